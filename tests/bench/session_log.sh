#!/usr/bin/env bash
# What the session log costs: `Connection: close` requests per second (wrk, one new session per
# request) through two copies of crates/proxy/examples/bench_proxy, one logging every session
# end as the daemon does (`VIPD_LOG=info`, text to a file), one with the session log switched off
# (`VIPD_LOG=info,vipd::session=off`), against one nginx. Runs alternate between the two so that
# load from elsewhere on the machine spreads over both. Loopback only; every run is bounded in
# time. Not a test: it prints the medians and their ratio (docs/operations.md, Session log).
#
#   tests/bench/session_log.sh              7 runs of 5 s each, median reported
#   RUNS=3 DURATION=3 tests/bench/session_log.sh
#   BASE_BIN=/path/to/older/bench_proxy tests/bench/session_log.sh
#                                           a third proxy in the rotation: a build from before
#                                           the session log, for what its bookkeeping costs
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-7}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
# Ports on 127.0.0.1, apart from tests/bench/proxy.sh's.
NGINX=28081 LOGGING=28444 SILENT=28445 BASE=28446
export PATH="$PATH:/usr/sbin:/sbin"
for tool in nginx wrk python3; do
    command -v "$tool" >/dev/null || { echo "session_log.sh: needs $tool (see tests/bench/proxy.sh)" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || true

if [ -z "${VIPD_BIN:-}" ]; then
    echo "session_log.sh: building the proxy (release)"
    cargo build --release -q -p vipd-proxy --example bench_proxy
    VIPD_BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_proxy
fi

work=$(mktemp -d /tmp/vipd-session-log-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "session_log.sh: nothing listens on port $1" >&2
    exit 1
}

mkdir -p "$work/nginx/logs"
cat >"$work/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server { listen 127.0.0.1:$NGINX; location / { return 200 "ok\n"; } }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx.conf" >"$work/nginx.out" 2>&1 &
pids+=($!)
VIPD_LOG=info "$VIPD_BIN" --frontend "http=127.0.0.1:$LOGGING" --server "a=127.0.0.1:$NGINX" \
    >/dev/null 2>"$work/sessions.log" &
pids+=($!)
VIPD_LOG=info,vipd::session=off "$VIPD_BIN" --frontend "http=127.0.0.1:$SILENT" \
    --server "a=127.0.0.1:$NGINX" >/dev/null 2>"$work/silent.log" &
pids+=($!)
targets="$LOGGING $SILENT"
if [ -n "${BASE_BIN:-}" ]; then
    "$BASE_BIN" --frontend "http=127.0.0.1:$BASE" --server "a=127.0.0.1:$NGINX" >/dev/null 2>&1 &
    pids+=($!)
    targets="$targets $BASE"
fi
for port in $NGINX $targets; do wait_port "$port"; done

rps() { # rps PORT: requests per second with one new connection per request
    timeout $((DURATION + 20)) wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H "Connection: close" \
        "http://127.0.0.1:$1/" | awk '/Requests\/sec:/ { print $2 }'
}

: >"$work/results"
for run in $(seq 1 "$RUNS"); do
    # Each target follows each of the others as often.
    order=$targets
    for _ in $(seq 2 "$run"); do order="${order#* } ${order%% *}"; done
    for port in $order; do echo "$port $(rps "$port")" >>"$work/results"; done
done
lines=$(grep -c ' vipd::session: session end ' "$work/sessions.log" || true)
silent_lines=$(grep -c 'vipd::session' "$work/silent.log" || true)
python3 - "$work/results" "$LOGGING $SILENT $BASE" "$lines" "$silent_lines" "$RUNS" "$DURATION" <<'PY'
import statistics, sys
path, ports, lines, silent_lines, runs, duration = sys.argv[1:]
names = dict(zip(ports.split(), ["on", "off", "base"]))
rates = {}
for line in open(path):
    port, rate = line.split()
    rates.setdefault(names[port], []).append(float(rate))
median = {name: statistics.median(values) for name, values in rates.items()}
spread = {name: f"{min(values):.0f}-{max(values):.0f}" for name, values in rates.items()}
print(f"Median (and range) of {runs} runs of {duration} s, wrk -c50 Connection: close, one nginx:")
print(f"  session log on:  {median['on']:.0f} req/s ({spread['on']}; {lines} lines written)")
print(f"  session log off: {median['off']:.0f} req/s ({spread['off']}; {silent_lines} lines written)")
if "base" in median:
    print(f"  before the session log: {median['base']:.0f} req/s ({spread['base']})")
    print(f"  off/before: {median['off'] / median['base']:.3f}")
print(f"  on/off: {median['on'] / median['off']:.3f}")
PY
