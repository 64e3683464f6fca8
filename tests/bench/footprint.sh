#!/usr/bin/env bash
# What a vipd node costs at rest, side by side with keepalived + HAProxy (Debian packages) doing
# the same job: the release binary's size (as built, and stripped), and the resident memory of
# the daemons once they serve an idle, realistic configuration. Not a test: it prints a table and
# writes it into docs/benchmarks.md (footprint section). Needs root (network namespaces); installs
# keepalived and haproxy with apt-get when missing.
#
#   tests/bench/footprint.sh                       builds the release binary as the package does
#   VIPD_BIN=target/release/vipd tests/bench/footprint.sh
#   VIPD_BIN=target/debug/vipd WRITE_DOC=0 SETTLE=3 tests/bench/footprint.sh   smoke test
#
# The configuration, the same for both: one VRRP instance (VRID 51, priority 150, 1 s adverts, one
# VIP, a maintenance-file tracker) that becomes master, and two frontends on the VIP (80 and 443),
# each with a backend of two servers under TCP health checks every 2 s. Two namespaces joined by a
# veth: the load balancer (198.51.100.11) and the servers (198.51.100.21 and .22, a listener that
# accepts and closes). vipd runs first, then keepalived + HAProxy, each alone; memory is read
# from /proc/PID/status (VmRSS) after SETTLE seconds, when the instance is master and every
# server has passed its checks.
set -euo pipefail
cd "$(dirname "$0")/../.."

SETTLE=${SETTLE:-10}

if [ "$(id -u)" -ne 0 ]; then
    echo "footprint.sh: needs root (network namespaces)" >&2
    exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"
tests/bench/install-packages keepalived haproxy iproute2 python3 binutils

if [ -z "${VIPD_BIN:-}" ]; then
    # What the Debian package ships: the release profile, without the lab.
    echo "footprint.sh: building vipd (release, --no-default-features)"
    cargo build --release --quiet --locked --bin vipd --no-default-features
    target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    VIPD_BIN=$target_dir/release/vipd
fi

work=$(mktemp -d /tmp/vipd-footprint.XXXXXX)
lb=vipd-fp-lb-$$ servers=vipd-fp-srv-$$
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    ip netns del "$lb" 2>/dev/null || true
    ip netns del "$servers" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$lb"
ip netns add "$servers"
ip link add "fp$$a" type veth peer name "fp$$b"
ip link set "fp$$a" netns "$lb"
ip link set "fp$$b" netns "$servers"
ip -n "$lb" link set "fp$$a" name eth0
ip -n "$servers" link set "fp$$b" name eth0
for ns in "$lb" "$servers"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
done
ip -n "$lb" address add 198.51.100.11/24 dev eth0
ip -n "$servers" address add 198.51.100.21/24 dev eth0
ip -n "$servers" address add 198.51.100.22/24 dev eth0
# HAProxy binds the VIP before keepalived adds it (vipd uses IP_FREEBIND).
ip netns exec "$lb" sysctl -q -w net.ipv4.ip_nonlocal_bind=1

# The servers: accept and close, on both addresses and both ports.
ip netns exec "$servers" python3 -c '
import socket, selectors
selector = selectors.DefaultSelector()
for address in ("198.51.100.21", "198.51.100.22"):
    for port in (80, 443):
        listener = socket.create_server((address, port))
        selector.register(listener, selectors.EVENT_READ)
while True:
    for key, _ in selector.select():
        connection, _ = key.fileobj.accept()
        connection.close()
' >"$work/servers.log" 2>&1 &
pids+=($!)

echo 0 >"$work/maintenance"
cat >"$work/vipd.yaml" <<EOF
node: lb1
vrrp:
  - name: vip
    interface: eth0
    vrid: 51
    priority: 150
    advert_interval: 1s
    vips: [198.51.100.50/24]
    track:
      - { file: $work/maintenance, weight: -100 }
frontends:
  - { name: http, bind: ["198.51.100.50:80"], backend: http }
  - { name: https, bind: ["198.51.100.50:443"], backend: https }
backends:
  - name: http
    health: { kind: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 2 }
    servers:
      - { name: s1, address: "198.51.100.21:80" }
      - { name: s2, address: "198.51.100.22:80" }
  - name: https
    health: { kind: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 2 }
    servers:
      - { name: s1, address: "198.51.100.21:443" }
      - { name: s2, address: "198.51.100.22:443" }
EOF
cat >"$work/keepalived.conf" <<EOF
global_defs {
    router_id lb1
}
vrrp_track_file maintenance {
    file $work/maintenance
    weight -100
}
vrrp_instance vip {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        198.51.100.50/24
    }
    track_file {
        maintenance
    }
}
EOF
# vipd's default max_connections is 100000; HAProxy refuses to start with a maxconn whose fds the
# hard limit cannot hold, so it gets as many as the limit allows, up to the same 100000.
haproxy_maxconn=$(( ($(ulimit -Hn) - 100) / 2 ))
[ "$haproxy_maxconn" -gt 100000 ] && haproxy_maxconn=100000
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn $haproxy_maxconn
defaults
    mode tcp
    timeout connect 3s
    timeout client 5m
    timeout server 5m
frontend http
    bind 198.51.100.50:80
    default_backend http
frontend https
    bind 198.51.100.50:443
    default_backend https
backend http
    server s1 198.51.100.21:80 check inter 2s rise 2 fall 2
    server s2 198.51.100.22:80 check inter 2s rise 2 fall 2
backend https
    server s1 198.51.100.21:443 check inter 2s rise 2 fall 2
    server s2 198.51.100.22:443 check inter 2s rise 2 fall 2
EOF

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
holds_vip() { ip -n "$lb" -4 address show dev eth0 | grep -q '198.51.100.50/'; }

running() { # running NAME PID: the process is alive, or its log is shown and the script ends
    kill -0 "$2" 2>/dev/null && return 0
    echo "footprint.sh: $1 exited; its log:" >&2
    cat "$work/$1.log" >&2
    exit 1
}

stop() { # stop PID...: SIGTERM, then wait for each
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do holds_vip || return 0; sleep 0.1; done
}

# vipd, as the unit runs it (no state directory: the admin state stays in memory).
ip netns exec "$lb" env RUNTIME_DIRECTORY="$work" "$VIPD_BIN" run -c "$work/vipd.yaml" >"$work/vipd.log" 2>&1 &
vipd_pid=$!
pids+=("$vipd_pid")
sleep "$SETTLE"
running vipd "$vipd_pid"
holds_vip || { echo "footprint.sh: vipd is not master after $SETTLE s" >&2; cat "$work/vipd.log" >&2; exit 1; }
vipd_rss=$(rss_kib "$vipd_pid")
vipd_threads=$(awk '/^Threads:/ { print $2 }' "/proc/$vipd_pid/status")
stop "$vipd_pid"

# keepalived (VRRP only: no virtual_server, so no checker process) + HAProxy.
ip netns exec "$lb" keepalived --dont-fork --log-console --no-syslog --dont-respawn --vrrp \
    --use-file "$work/keepalived.conf" --pid "$work/keepalived.pid" --vrrp_pid "$work/vrrp.pid" \
    >"$work/keepalived.log" 2>&1 &
keepalived_pid=$!
pids+=("$keepalived_pid")
ip netns exec "$lb" haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
pids+=("$haproxy_pid")
sleep "$SETTLE"
running keepalived "$keepalived_pid"
running haproxy "$haproxy_pid"
holds_vip || { echo "footprint.sh: keepalived is not master after $SETTLE s" >&2; cat "$work/keepalived.log" >&2; exit 1; }
keepalived_rss=0
for pid in $(pgrep -P "$keepalived_pid") "$keepalived_pid"; do
    keepalived_rss=$((keepalived_rss + $(rss_kib "$pid")))
done
keepalived_processes=$(($(pgrep -c -P "$keepalived_pid") + 1))
haproxy_rss=$(rss_kib "$haproxy_pid")
stop "$haproxy_pid" "$keepalived_pid"

size_kib() { echo $(($(stat -c %s "$1") / 1024)); }
stripped_kib() { strip -o "$work/stripped" "$1" && size_kib "$work/stripped"; }
vipd_size=$(size_kib "$VIPD_BIN")
vipd_stripped=$(stripped_kib "$VIPD_BIN")
keepalived_bin=$(command -v keepalived)
haproxy_bin=$(command -v haproxy)

mib() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1024:.1f} MiB')" "$1"; }
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, Linux $(uname -r)"
versions="$(keepalived --version 2>&1 | head -1 | cut -d' ' -f1-2), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
section=$(
    cat <<EOF
<!-- footprint:start -->
## Footprint: binary size and idle memory

Written by \`tests/bench/footprint.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Machine: $machine.
vipd: \`$("$VIPD_BIN" --version)\`, built as the Debian package is (release profile,
\`--no-default-features\`: no \`vipd lab\`). References: $versions (Debian packages, dynamically
linked: their shared libraries are not counted in the sizes, and are counted in RSS as far as
their pages are resident). HAProxy's \`maxconn\` is $haproxy_maxconn (vipd: \`max_connections\` 100000,
the default; HAProxy refuses a maxconn whose fds the hard limit, $(ulimit -Hn) here, cannot hold). One VRRP instance (master, 1 s adverts, a file tracker) and two
frontends on the VIP with two TCP-checked servers each, in a network namespace; RSS after
$SETTLE s, idle.

| | vipd | keepalived + HAProxy |
|---|---:|---:|
| binary size | $(mib "$vipd_size") | $(mib "$(size_kib "$keepalived_bin")") + $(mib "$(size_kib "$haproxy_bin")") |
| binary size, stripped | $(mib "$vipd_stripped") | (Debian's are stripped) |
| processes | 1 ($vipd_threads threads) | $keepalived_processes keepalived + 1 HAProxy |
| RSS idle | $(mib "$vipd_rss") | $(mib "$keepalived_rss") + $(mib "$haproxy_rss") = $(mib $((keepalived_rss + haproxy_rss))) |

vipd's binary keeps its line tables (\`debug = "line-tables-only"\` in the release profile): the
difference to the stripped size is what a panic's backtrace costs on disk; they are not loaded
unless a backtrace is printed, so they add nothing to RSS.
<!-- footprint:end -->
EOF
)
echo
echo "$section"

[ "${WRITE_DOC:-1}" = 0 ] && exit 0
tests/bench/write-section footprint "$section"
