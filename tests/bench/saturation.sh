#!/usr/bin/env bash
# Both cores saturated (stress-ng, one CPU hog per core at the daemons' own priority) for 60 s
# while a vipd pair and a keepalived pair run side by side, at shorter and shorter advert
# intervals: the shortest interval at which each still has no false failover (the backup never
# took the VIP from a master that did not fail). Not a test: it prints a table and writes it into
# docs/benchmarks.md (saturation section). Needs root (network namespaces); installs stress-ng,
# keepalived, tcpdump and tshark with apt-get when missing.
#
#   tests/bench/saturation.sh                                  60 s per interval, release build
#   LOAD_SECONDS=10 INTERVALS=100,30 PROFILE=dev WRITE_DOC=0 tests/bench/saturation.sh   smoke test
#
# The measuring code is the ignored test `cpu_saturation::saturation_benchmark` in
# tests/integration/cpu_saturation.rs. Each pair: two lab hosts (priorities 150 and 100, VRRPv3,
# multicast, one VIP); the VIP watched on both nodes (netlink), the adverts delivered to the
# backup's IP layer timed (nftables NFLOG + tcpdump).
set -euo pipefail
cd "$(dirname "$0")/../.."

LOAD_SECONDS=${LOAD_SECONDS:-60}
INTERVALS=${INTERVALS:-100,50,30,20,10}
PROFILE=${PROFILE:-release}
TIME_LIMIT=${TIME_LIMIT:-3600}

if [ "$(id -u)" -ne 0 ]; then
    echo "saturation.sh: needs root (network namespaces, raw sockets)" >&2
    exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"

tests/bench/install-packages stress-ng keepalived tcpdump tshark nftables iproute2 python3

profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)
out=$(mktemp /tmp/vipd-saturation-bench.XXXXXX)
trap 'rm -f "$out"' EXIT

if [ -n "${RESULTS:-}" ]; then
    cp "$RESULTS" "$out"
else
    echo "saturation.sh: building and running ($PROFILE, ${LOAD_SECONDS} s per interval, intervals $INTERVALS ms)"
    BENCH_LOAD_SECONDS=$LOAD_SECONDS BENCH_INTERVALS_MS=$INTERVALS VIPD_E2E=required timeout "$TIME_LIMIT" \
        cargo test -q "${profile_flag[@]}" -p vipd --test integration -- \
        --ignored --exact cpu_saturation::saturation_benchmark --nocapture --test-threads=1 | tee "$out" | grep --line-buffered -E '^(RESULT|UNSETTLED)'
fi

keepalived_version=$(keepalived --version 2>&1 | sed -n 1p)
stress_version=$(stress-ng --version 2>&1 | sed -n 1p)
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)"
section=$(python3 - "$out" "$LOAD_SECONDS" "$PROFILE" "$keepalived_version" "$stress_version" "$machine" "$(date -u '+%Y-%m-%d %H:%M UTC')" <<'PY'
import sys
path, load, profile, keepalived, stress, machine, date = sys.argv[1:]
results, unsettled = {}, set()
for line in open(path):
    words = line.split()
    if words[:1] == ["RESULT"]:
        _, impl, interval, false_failovers, changes, gap = words
        results[(impl, int(interval))] = (int(false_failovers), int(changes), float(gap))
    elif words[:1] == ["UNSETTLED"]:
        unsettled.add((words[1], int(words[2])))
intervals = sorted({interval for _, interval in results} | {interval for _, interval in unsettled}, reverse=True)

def cell(impl, interval):
    if (impl, interval) in unsettled:
        return "did not elect"
    if (impl, interval) not in results:
        return "n/a"
    false_failovers, _, gap = results[(impl, interval)]
    return f"{false_failovers} ({gap:.1f} ms)"

def shortest(impl):
    clean = [i for i in intervals if results.get((impl, i), (1,))[0] == 0]
    # The shortest interval such that it and every longer one measured had no false failover.
    best = None
    for interval in intervals:
        if interval in clean:
            best = interval
        else:
            break
    return "none measured" if best is None else f"{best} ms"

rows = "\n".join(f"| {i} ms | {cell('vipd', i)} | {cell('keepalived', i)} |" for i in intervals)
print(f"""<!-- saturation-bench:start -->
## CPU saturation: false failovers, vipd vs keepalived

Written by `tests/bench/saturation.sh` on {date}. Machine: {machine}. Reference: {keepalived};
load: {stress}, `stress-ng --cpu 0` (one CPU hog per core, nice 0 like the daemons) for
{load} s per interval. {profile} build of vipd. At each interval a vipd pair and a keepalived pair
(two lab hosts each, priorities 150 and 100, VRRPv3 multicast, one VIP) run side by side under
the same load. A cell is the number of false failovers (the backup took the VIP from a master that
never failed) and, in brackets, the longest gap between two adverts delivered to the backup; the
backup takes over once a gap reaches its Master_Down_Interval (3 × interval + 61 ms × interval /
100 ms). Rerun with `tests/bench/saturation.sh` (as root). The test
`cpu_saturation::saturated_cores_cause_no_false_failover_at_100ms_and_30ms_adverts` keeps 100 ms
and 30 ms at zero (20 s of load, debug build, run alone by tests/run).

| advert interval | vipd | keepalived |
|---|---|---|
{rows}

Shortest interval with no false failover (and none at any longer interval): vipd {shortest('vipd')},
keepalived {shortest('keepalived')}.
<!-- saturation-bench:end -->""")
PY
)
echo
echo "$section"

[ "${WRITE_DOC:-1}" = 0 ] && exit 0
tests/bench/write-section saturation-bench "$section"
