#!/usr/bin/env bash
# Side-by-side benchmark of vipd's L4 proxy and HAProxy (Debian package), with a direct run as the
# physical limit. Loopback only (127.0.0.1); every run is bounded in time. Not a test: it prints
# ratios vipd/HAProxy and vipd/direct and writes them into docs/benchmarks.md (proxy section).
#
#   tests/bench/proxy.sh                  7 runs of 5 s per workload and target, median reported
#   RUNS=3 DURATION=3 tests/bench/proxy.sh
#   VIPD_BIN=target/debug/examples/bench_proxy WRITE_DOC=0 RUNS=1 DURATION=1 IDLE_CONNECTIONS=100 \
#       tests/bench/proxy.sh          smoke test of the script itself (numbers mean nothing)
#
# Workloads: bulk throughput (iperf3 through the proxy, one stream and 8 parallel streams) and the
# proxy's CPU seconds per GB moved, HTTP requests per second with keep-alive and with
# `Connection: close` (wrk against two nginx backends), p50/p99 latency, proxy RSS and pipe fds idle
# and with 10 000 open idle connections. Runs are interleaved (direct, HAProxy, vipd, then
# HAProxy, vipd, direct, ...) so that load from elsewhere on the machine spreads over all three.
#
# With two CPUs or more, the proxies run on CPU 0 and everything else (iperf3 client and server,
# wrk, nginx, the idle connections' client) on CPU 1, direct runs included: a proxy gets one core,
# the load and the servers the other, whatever the scheduler would have done.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Seven runs: on this shared 2-core machine one run's vipd/HAProxy ratio moves by +-6 %.
RUNS=${RUNS:-7}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
# wrk's threads; the proxies' threads follow the CPUs they get (below).
WRK_THREADS=2

if [ "$(nproc)" -ge 2 ]; then
    # One core, one thread each: HAProxy's nbthread 1, and vipd's proxy starts one session
    # thread per CPU it may use. A second thread on the same core only adds switches between
    # them (keep-alive: vipd 0.61x HAProxy with two threads each, 1.11x with one).
    proxy_cpu=(taskset -c 0) load_cpu=(taskset -c 1) THREADS=1
    layout="Proxies pinned to CPU 0 (\`taskset -c 0\`); iperf3 client and server, wrk, nginx and the idle connections' client pinned to CPU 1, direct runs included."
else
    proxy_cpu=() load_cpu=() THREADS=2
    layout="One CPU: nothing pinned; client, proxy and backends share it."
fi

# Ports, all on 127.0.0.1; PORT_OFFSET=N moves them all by N (another benchmark on the machine).
offset=${PORT_OFFSET:-0}
NGINX_A=$((18081 + offset)) NGINX_B=$((18082 + offset)) IPERF=$((15201 + offset))
HAPROXY_HTTP=$((18443 + offset)) HAPROXY_BULK=$((15202 + offset))
VIPD_HTTP=$((18444 + offset)) VIPD_BULK=$((15203 + offset)) REFERENCE_BULK=$((15204 + offset))

need_packages() {
    local missing=()
    for tool in haproxy:haproxy nginx:nginx-light wrk:wrk iperf3:iperf3 python3:python3; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool##*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "proxy.sh: missing ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "proxy.sh: installing ${missing[*]}"
    # Keep package scripts from starting services on the ports we use.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ $created -eq 1 ] && rm -f "$policy"
    return 0
}
need_packages
export PATH="$PATH:/usr/sbin:/sbin"

# A proxied connection holds two fds in the proxy: 10 000 idle connections need 20 000 and a few.
# Raise the limit if we may; where the hard limit is lower (containers without CAP_SYS_RESOURCE),
# hold as many idle connections as it allows, and say so.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -n)
idle_note=""
if [ "$IDLE_CONNECTIONS" -gt $(((fd_limit - 400) / 2)) ]; then
    IDLE_CONNECTIONS=$(((fd_limit - 400) / 2))
    idle_note="The fd limit here ($fd_limit, hard) allows $IDLE_CONNECTIONS proxied idle connections, not 10 000."
    echo "proxy.sh: $idle_note"
fi

if [ -z "${VIPD_BIN:-}" ]; then
    echo "proxy.sh: building the proxy (release)"
    cargo build --release -q -p vipd-proxy --example bench_proxy
    VIPD_BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_proxy
fi

work=$(mktemp -d /tmp/vipd-proxy-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

start() { # start NAME COMMAND...: run in the background, remember the pid
    local name=$1
    shift
    "$@" <"/dev/null" >"$work/$name.log" 2>&1 &
    pids+=($!)
    eval "${name}_pid=$!"
}

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "proxy.sh: nothing listens on port $1; logs in $work" >&2
    cat "$work"/*.log >&2 || true
    exit 1
}

mkdir -p "$work/nginx/logs"
cat >"$work/nginx.conf" <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile 100000;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 50000; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_A;
        listen 127.0.0.1:$NGINX_B;
        location / { return 200 "ok\n"; }
    }
}
EOF
cat >"$work/haproxy.cfg" <<EOF
global
    nbthread $THREADS
    # Fits the fd limit: two fds per connection plus a small pipe pool for splicing.
    maxconn $((IDLE_CONNECTIONS + 50))
    maxpipes 64
defaults
    mode tcp
    option splice-auto
    timeout connect 3s
    timeout client 5m
    timeout server 5m
    timeout tunnel 1h
    timeout client-fin 5s
    retries 3
    option redispatch
frontend http
    bind 127.0.0.1:$HAPROXY_HTTP
    default_backend nginx
backend nginx
    balance roundrobin
    server a 127.0.0.1:$NGINX_A
    server b 127.0.0.1:$NGINX_B
frontend bulk
    bind 127.0.0.1:$HAPROXY_BULK
    default_backend iperf
backend iperf
    server i 127.0.0.1:$IPERF
EOF

start nginx "${load_cpu[@]}" nginx -p "$work/nginx" -c "$work/nginx.conf"
start iperf "${load_cpu[@]}" timeout 3600 iperf3 -s -B 127.0.0.1 -p $IPERF
wait_port $NGINX_A
wait_port $IPERF

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Pipes the process holds: each is two fds (read and write end). Pipes it inherited from this
# script (whatever started the script may have left some open) are not the proxy's.
find /proc/$$/fd -lname 'pipe:*' -printf '%l\n' >"$work/inherited-pipes"
pipe_fds() { find "/proc/$1/fd" -lname 'pipe:*' -printf '%l\n' 2>/dev/null | grep -cvxF -f "$work/inherited-pipes" || true; }
# utime + stime of all the process's threads, in clock ticks (fields 14 and 15 of /proc/PID/stat,
# counted after the command name, which is in parentheses).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
CLK_TCK=$(getconf CLK_TCK)

# Idle RSS: measured right after start, before any traffic.
start haproxy "${proxy_cpu[@]}" haproxy -f "$work/haproxy.cfg" -db
# vipd's session threads, like tokio's workers, follow the CPUs it may run on.
start vipd env TOKIO_WORKER_THREADS=$THREADS "${proxy_cpu[@]}" "$VIPD_BIN" --frontend "http=127.0.0.1:$VIPD_HTTP" --server "a=127.0.0.1:$NGINX_A" --server "b=127.0.0.1:$NGINX_B" \
    --frontend "bulk=127.0.0.1:$VIPD_BULK" --server "i=127.0.0.1:$IPERF"
# The reference for one stream: what a proxy that only splices moves here (its own file says what
# it is). Same core as the proxies.
start reference "${proxy_cpu[@]}" python3 tests/bench/splice_reference.py "$REFERENCE_BULK" "$IPERF"
wait_port $HAPROXY_HTTP
wait_port $VIPD_HTTP
wait_port $REFERENCE_BULK
sleep 1
haproxy_rss_idle=$(rss_kib "$haproxy_pid")
vipd_rss_idle=$(rss_kib "$vipd_pid")
haproxy_pipes_idle=$(pipe_fds "$haproxy_pid")
vipd_pipes_idle=$(pipe_fds "$vipd_pid")

results=$work/results
: >"$results"

bulk() { # bulk TARGET PORT STREAMS PROXY_PID: Gbit/s received, and the proxy's CPU s per GB
    local streams=$3 pid=${4:-} name=bulk before=0 after=0 received
    [ "$streams" -gt 1 ] && name=bulk_p$streams
    [ -n "$pid" ] && before=$(cpu_ticks "$pid")
    received=$(timeout $((DURATION + 20)) "${load_cpu[@]}" iperf3 -c 127.0.0.1 -p "$2" -P "$streams" -t "$DURATION" -J |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum_received"]; print(s["bits_per_second"]/1e9, s["bytes"])')
    [ -n "$pid" ] && after=$(cpu_ticks "$pid")
    echo "$1 ${name}_gbps ${received% *}" >>"$results"
    [ -n "$pid" ] && python3 -c 'import sys; ticks, tck, received = map(float, sys.argv[1:4]); print(sys.argv[4], f"{ticks / tck / (received / 1e9)}")' \
        $((after - before)) "$CLK_TCK" "${received#* }" "$1 ${name}_cpu_s_per_gb" >>"$results"
    return 0
}

http() { # http TARGET PORT MODE: req/s, p50 and p99 in ms, with keep-alive or Connection: close
    local out header=()
    [ "$3" = close ] && header=(-H "Connection: close")
    out=$(timeout $((DURATION + 20)) "${load_cpu[@]}" wrk -t$WRK_THREADS -c"$CONNECTIONS" -d"${DURATION}s" --latency "${header[@]}" "http://127.0.0.1:$2/")
    echo "$out" | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", text)
target, mode = sys.argv[1], sys.argv[2]
print(f"{target} {mode}_rps {rps}")
p50, p99 = ms("50%"), ms("99%")
print(f"{target} {mode}_p50_ms {p50}")
print(f"{target} {mode}_p99_ms {p99}")
if errors:
    print(f"{target} {mode}_errors_seen 1")
' "$1" "$3" >>"$results"
}

# The order of the targets rotates from run to run: each follows each of the others as often,
# so that what one run leaves behind (TIME_WAIT sockets, a warm or cold cache) favours none.
targets=(direct haproxy vipd)
for run in $(seq 1 "$RUNS"); do
    echo "proxy.sh: run $run/$RUNS"
    shift_by=$(((run - 1) % 3))
    for target in "${targets[@]:shift_by}" "${targets[@]:0:shift_by}"; do
        case $target in
            direct) http_port=$NGINX_A bulk_port=$IPERF proxy_pid= ;;
            haproxy) http_port=$HAPROXY_HTTP bulk_port=$HAPROXY_BULK proxy_pid=$haproxy_pid ;;
            vipd) http_port=$VIPD_HTTP bulk_port=$VIPD_BULK proxy_pid=$vipd_pid ;;
        esac
        bulk "$target" "$bulk_port" 1 "$proxy_pid"
        bulk "$target" "$bulk_port" 8 "$proxy_pid"
        http $target $http_port keepalive
        http $target $http_port close
        # The splice-only reference right after vipd, one stream: the same load around both.
        [ "$target" = vipd ] && bulk reference "$REFERENCE_BULK" 1 "$reference_pid"
    done
done

# Pipes kept after the bulk runs: vipd gives a direction's pipe back to its thread's pool after a
# quiet second; both proxies pool pipes.
sleep 2
haproxy_pipes_after_bulk=$(pipe_fds "$haproxy_pid")
vipd_pipes_after_bulk=$(pipe_fds "$vipd_pid")

# RSS and pipes with idle connections: open them through the proxy, wait, read, close them.
hold_idle() { # hold_idle PORT PID: prints the proxy's RSS in KiB and its pipe fds while IDLE_CONNECTIONS are open
    "${load_cpu[@]}" python3 - "$1" "$2" "$IDLE_CONNECTIONS" "$work/inherited-pipes" <<'EOF'
import os, socket, sys, time
port, pid, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
inherited = set(open(sys.argv[4]).read().split())
sockets = []
deadline = time.time() + 60
for _ in range(count):
    if time.time() > deadline:
        break
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    sockets.append(s)
time.sleep(3)  # let the proxy accept and connect everything
with open(f"/proc/{pid}/status") as status:
    rss = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
pipes = 0
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        pipes += target.startswith("pipe:") and target not in inherited
    except OSError:
        pass
print(rss, pipes if len(sockets) == count else f"{pipes} (only {len(sockets)} connections)")
for s in sockets:
    s.close()
EOF
}
read -r haproxy_rss_conns haproxy_pipes_conns < <(hold_idle $HAPROXY_HTTP "$haproxy_pid")
sleep 2
read -r vipd_rss_conns vipd_pipes_conns < <(hold_idle $VIPD_HTTP "$vipd_pid")

report=$(python3 - "$results" "$RUNS" "$DURATION" "$CONNECTIONS" "$IDLE_CONNECTIONS" \
    "$haproxy_rss_idle" "$vipd_rss_idle" "$haproxy_rss_conns" "$vipd_rss_conns" \
    "$haproxy_pipes_idle" "$vipd_pipes_idle" "$haproxy_pipes_after_bulk" "$vipd_pipes_after_bulk" \
    "$haproxy_pipes_conns" "$vipd_pipes_conns" <<'EOF'
import math, statistics, sys
from collections import defaultdict
path, runs, duration, connections, idle = sys.argv[1:6]
rss = dict(zip(["haproxy idle", "vipd idle", "haproxy conns", "vipd conns"], sys.argv[6:10]))
pipes = dict(zip(["haproxy idle", "vipd idle", "haproxy bulk", "vipd bulk", "haproxy conns", "vipd conns"], sys.argv[10:16]))
values = defaultdict(list)
for line in open(path):
    target, metric, value = line.split()
    values[(target, metric)].append(float(value))
median = lambda target, metric: statistics.median(values[(target, metric)]) if values[(target, metric)] else float("nan")
rows = [
    ("bulk, one stream (Gbit/s)", "bulk_gbps"),
    ("bulk, 8 streams (Gbit/s)", "bulk_p8_gbps"),
    ("bulk CPU, one stream (s/GB)", "bulk_cpu_s_per_gb"),
    ("bulk CPU, 8 streams (s/GB)", "bulk_p8_cpu_s_per_gb"),
    ("keep-alive (req/s)", "keepalive_rps"),
    ("keep-alive p50 (ms)", "keepalive_p50_ms"),
    ("keep-alive p99 (ms)", "keepalive_p99_ms"),
    ("Connection: close (req/s)", "close_rps"),
    ("close p50 (ms)", "close_p50_ms"),
    ("close p99 (ms)", "close_p99_ms"),
]
print(f"Median of {runs} runs of {duration} s; wrk with {connections} connections, 2 threads; iperf3 one stream, and")
print("8 streams (`-P 8`, their sum). CPU s/GB: the proxy process's utime + stime (all threads) during")
print("the iperf3 run, per 10^9 bytes received. Runs alternate between the targets, so run i of vipd")
print("and of HAProxy saw about the same load from elsewhere on the machine: the last two columns are")
print("the medians of the per-run ratios, and their range.")
print()
print("| workload | direct | HAProxy | vipd | vipd/HAProxy | vipd/direct | vipd/HAProxy per run: median (min–max) | vipd/direct per run: median (min–max) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
def fmt(value):
    if math.isnan(value):
        return ""
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}" if value < 10 else f"{value:.1f}"
def ratio(x, y):
    return "" if math.isnan(x) or math.isnan(y) or not y else f"{x / y:.2f}"
def per_run(metric, reference):
    # Runs are interleaved, so run i of vipd and of the reference saw similar load from elsewhere.
    ratios = [x / y for x, y in zip(values[("vipd", metric)], values[(reference, metric)]) if y]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})" if ratios else ""
for label, metric in rows:
    d, h, v = (median(t, metric) for t in ("direct", "haproxy", "vipd"))
    print(f"| {label} | {fmt(d)} | {fmt(h)} | {fmt(v)} | {ratio(v, h)} | {ratio(v, d)} | {per_run(metric, 'haproxy')} | {per_run(metric, 'direct')} |")
first = lambda text: int(text.split()[0])
note = lambda text: f" {' '.join(text.split()[1:])}" if len(text.split()) > 1 else ""
mib = lambda kib: f"{first(kib) / 1024:.1f} MiB{note(kib)}"
def memory_row(label, table, key, show):
    h, v = table[f"haproxy {key}"], table[f"vipd {key}"]
    share = f"{first(v) / first(h):.2f}" if first(h) else ""
    print(f"| {label} | | {show(h)} | {show(v)} | {share} | | | |")
def reference_line():
    metric = "bulk_gbps"
    if not values[("reference", metric)]:
        return
    r, v, d = (median(t, metric) for t in ("reference", "vipd", "direct"))
    ref_direct = [x / y for x, y in zip(values[("reference", metric)], values[("direct", metric)]) if y]
    vipd_ref = [x / y for x, y in zip(values[("vipd", metric)], values[("reference", metric)]) if y]
    cpu = median("reference", "bulk_cpu_s_per_gb")
    print()
    print(f"Reference, one stream: a proxy that only splices through a 256 KiB pipe per direction "
          f"(`tests/bench/splice_reference.py`, single-threaded epoll, same core) moved {fmt(r)} Gbit/s, "
          f"{statistics.median(ref_direct):.2f}× direct ({min(ref_direct):.2f}–{max(ref_direct):.2f} per run), "
          f"at {cpu:.3g} s/GB; vipd/reference per run: {statistics.median(vipd_ref):.2f} "
          f"({min(vipd_ref):.2f}–{max(vipd_ref):.2f}).")
memory_row("RSS idle", rss, "idle", mib)
memory_row(f"RSS, {int(idle):,} idle connections", rss, "conns", mib)
memory_row("pipe fds idle", pipes, "idle", str)
memory_row("pipe fds after the bulk runs", pipes, "bulk", str)
memory_row(f"pipe fds, {int(idle):,} idle connections", pipes, "conns", str)
reference_line()
errors = [key for key in values if key[1].endswith("_errors_seen")]
if errors:
    print()
    print("wrk reported errors or non-2xx responses for: " + ", ".join(f"{t} {m[:-12]}" for t, m in errors))
EOF
)

machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, Linux $(uname -r)"
versions="$(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(iperf3 --version | head -1 | cut -d' ' -f1-2)"
section=$(
    cat <<EOF
<!-- proxy-bench:start -->
## L4 proxy: vipd vs HAProxy

Written by \`tests/bench/proxy.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Machine: $machine.
References: $versions. Loopback only. $layout
Both proxies: $THREADS thread(s) (HAProxy \`nbthread\`; vipd one session thread per CPU it may use), TCP mode, round robin over two nginx backends, splice for bulk transfers
(\`option splice-auto\` for HAProxy), no health checks. vipd runs \`crates/proxy/examples/bench_proxy.rs\`
(release build). Rerun with \`tests/bench/proxy.sh\` (root installs missing packages). $idle_note
Pipe fds: \`ls -l /proc/PID/fd | grep -c pipe:\`, two per pipe. vipd's pool keeps only 64 KiB pipes
(at most 32 per worker thread; a grown pipe is shrunk when given back), so pipe fds / 2 × 64 KiB
bounds its kernel pipe capacity while no stream runs.

$report
<!-- proxy-bench:end -->
EOF
)
echo
echo "$section"

[ "${WRITE_DOC:-1}" = 0 ] && exit 0
tests/bench/write-section proxy-bench "$section"
