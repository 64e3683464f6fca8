#!/usr/bin/env bash
# Side-by-side failover benchmark of vipd and keepalived (Debian package) in the same two-node lab
# with the same settings. Not a test: it prints medians and ratios vipd/keepalived and writes them
# into docs/benchmarks.md (failover section). Needs root (network namespaces); installs keepalived
# and socat with apt-get when missing.
#
#   tests/bench/failover.sh                    5 repeats per case, release build
#   REPEATS=1 PROFILE=dev WRITE_DOC=0 tests/bench/failover.sh    smoke test of the script itself
#   RESULTS=saved-output tests/bench/failover.sh    summarise an earlier run's RESULT lines
#
# Lab (crates/lab, namespaces only, 198.51.100.0/24): two nodes (priority 150 and 100, multicast,
# one VIP), a backend, a client. Cases: VRRPv2 at 1 s adverts and VRRPv3 at 100 ms, each
# unplanned (the master's VRRP process SIGKILLed and its link cut at the same instant) and planned
# (SIGTERM: a priority-0 advert). The failure is triggered right after one of the master's adverts
# reached the backup, so every run starts at the same phase of the advert cycle (the worst case
# for an unplanned failure: a full Master_Down_Interval). Measured from the failure: the VIP
# appearing on the backup (netlink monitor in its namespace), and the first TCP connect from the
# client through the VIP (a new connect every 0.5 ms). Behind the VIP: vipd's proxy; for keepalived,
# socat forwarding to the same backend (where haproxy would be). Implementations are interleaved
# run by run so that load from elsewhere spreads over both. The measuring code is the ignored test
# `keepalived_interop::failover_benchmark` in tests/integration/keepalived_interop.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPEATS=${REPEATS:-5}
PROFILE=${PROFILE:-release}
# Every run is bounded inside the measuring test; this bounds the whole (build included).
TIME_LIMIT=${TIME_LIMIT:-3600}

if [ "$(id -u)" -ne 0 ]; then
    echo "failover.sh: needs root (network namespaces, raw sockets)" >&2
    exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"

need_packages() {
    local missing=()
    for pkg in keepalived socat iproute2 nftables python3; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "failover.sh: installing ${missing[*]}"
    # Keep package scripts from starting keepalived on the host: the lab starts its own.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ $created -eq 1 ] && rm -f "$policy"
    return 0
}
need_packages

profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)
out=$(mktemp /tmp/vipd-failover-bench.XXXXXX)
trap 'rm -f "$out"' EXIT

if [ -n "${RESULTS:-}" ]; then
    # Summarise the RESULT lines of an earlier run instead of measuring again.
    cp "$RESULTS" "$out"
else
    echo "failover.sh: building and running ($PROFILE, $REPEATS repeats per case)"
    BENCH_REPEATS=$REPEATS VIPD_E2E=required timeout "$TIME_LIMIT" \
        cargo test -q "${profile_flag[@]}" -p vipd --test integration -- \
        --ignored --exact keepalived_interop::failover_benchmark --nocapture --test-threads=1 | tee "$out" | grep --line-buffered -E '^(RESULT|FAILED)'
fi

if grep -q '^FAILED' "$out"; then
    echo "failover.sh: some runs failed (above); medians are over the runs that completed" >&2
fi

# sed, not head: head would close the pipe early and pipefail would end the script.
keepalived_version=$(keepalived --version 2>&1 | sed -n 1p)
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)"
section=$(python3 - "$out" "$REPEATS" "$PROFILE" "$keepalived_version" "$machine" "$(date -u '+%Y-%m-%d %H:%M UTC')" <<'EOF'
import statistics, sys
path, repeats, profile, keepalived, machine, date = sys.argv[1:]
runs = {}
failed = {}
for line in open(path):
    words = line.split()
    if words and words[0] == "RESULT":
        _, impl, case, kind, _, vip, client = words
        runs.setdefault((case, kind, impl), []).append((float(vip), float(client)))
    elif words and words[0] == "FAILED":
        key = (words[2], words[3], words[1])
        failed[key] = failed.get(key, 0) + 1

def median(key, column):
    values = [run[column] for run in runs.get(key, [])]
    return statistics.median(values) if values else None

def fmt(value):
    return "n/a" if value is None else f"{value:.1f}"

def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.3f}"

rows = []
for case, advert in (("v2-1s", "v2, 1 s"), ("v3-100ms", "v3, 100 ms")):
    for kind in ("unplanned", "planned"):
        k = (case, kind, "keepalived")
        v = (case, kind, "vipd")
        kv, vv = median(k, 0), median(v, 0)
        kc, vc = median(k, 1), median(v, 1)
        n = f"{len(runs.get(k, []))}/{len(runs.get(v, []))}"
        rows.append(f"| {advert} | {kind} | {fmt(kv)} | {fmt(vv)} | {ratio(vv, kv)} | {fmt(kc)} | {fmt(vc)} | {ratio(vc, kc)} | {n} |")
# The targets: every ratio <= 1.0; planned client-visible failover at 100 ms <= 70 ms.
above = []
for case in ("v2-1s", "v3-100ms"):
    for kind in ("unplanned", "planned"):
        for column, what in ((0, "VIP"), (1, "client")):
            k, v = median((case, kind, "keepalived"), column), median((case, kind, "vipd"), column)
            if k and v and v / k > 1.0:
                above.append(f"{case} {kind} {what} {v / k:.4f} (+{v - k:.1f} ms)")
planned_client = median(("v3-100ms", "planned", "vipd"), 1)
targets = "\nTargets: ratios <= 1.0: " + ("all met" if not above else "above 1.0 in " + ", ".join(above))
targets += f"; vipd planned client-visible failover at 100 ms: {fmt(planned_client)} ms (target <= 70 ms).\n"
failures = ""
if failed:
    failures = "\nRuns that did not complete: " + ", ".join(f"{impl} {case} {kind}: {count}" for (case, kind, impl), count in sorted(failed.items())) + ".\n"
print(f"""<!-- failover-bench:start -->
## Failover: vipd vs keepalived

Written by `tests/bench/failover.sh` on {date}. Machine: {machine}. Reference: {keepalived}.
Medians of {repeats} runs per cell ({profile} build of vipd), in ms from the failure to: the VIP on
the backup ("VIP"), and the first client TCP connect through the VIP ("client": a new connect
every 0.5 ms, each bounded by 200 ms; planned runs start connecting once the old master
released the VIP, which served the client until then). Same lab and
settings for both: two nodes on one bridge (priorities 150 and 100, multicast), a backend and a
client in network namespaces. Unplanned: the master's VRRP process SIGKILLed and its link cut at
once; planned: SIGTERM (priority-0 advert). Every failure is triggered right after a master's
advert reached the backup, so unplanned failovers take a full Master_Down_Interval
(v2: 3609 ms, v3 at 100 ms: 361 ms for priority 100) and planned ones Skew_Time (609 ms, 61 ms)
plus what each implementation adds. Ratio = vipd / keepalived (lower is better for vipd).
Rerun with `tests/bench/failover.sh` (as root; installs keepalived and socat if missing).

| adverts | failover | keepalived VIP | vipd VIP | ratio | keepalived client | vipd client | ratio | runs (k/v) |
|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n" + targets + failures + "<!-- failover-bench:end -->")
EOF
)
echo
echo "$section"

[ "${WRITE_DOC:-1}" = 0 ] && exit 0
tests/bench/write-section failover-bench "$section"
