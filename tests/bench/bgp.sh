#!/usr/bin/env bash
# Announced VIPs over BGP with ECMP: three vipd nodes, each announcing one VIP through its own
# BIRD to a BIRD router that spreads a client's connections over them (L4 hash). Not a test: it
# prints what the client and the router's kernel saw and writes it into docs/benchmarks.md
# ("Announced VIPs (BGP, ECMP)" section). Needs root (network namespaces); installs bird2 and
# nftables with apt-get when missing.
#
#   tests/bench/bgp.sh                                   3 rounds, release build
#   REPEATS=1 PROFILE=dev WRITE_DOC=0 tests/bench/bgp.sh    smoke test of the script itself
#   RESULTS=saved-output tests/bench/bgp.sh              summarise an earlier run's RESULT lines
#
# Lab: vipd-lab's RoutedLab (crates/lab/src/routed.rs): router, three nodes (lb1..lb3, each vipd +
# BIRD running deploy/bird/vipd-node.conf), client, one backend per node. Each round: the spread
# of 3000 new connections; under a load of a new connection every 2 ms, one node's backend dying,
# its vipd getting SIGTERM or SIGKILL, its uplink blackholed (nftables; BFD off, then on in a
# second lab): the time until the router's kernel route lost the node and the client's failed
# connections; and 300 idle connections checked by an echo after each node in turn was withdrawn,
# with the kernel's default multipath hashing and with a resilient next-hop group. The measuring
# code is the ignored test `announce_bench::announce_benchmark` in
# tests/integration/announce_bench.rs; every load in it is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPEATS=${REPEATS:-3}
PROFILE=${PROFILE:-release}
# Every run is bounded inside the measuring test; this bounds the whole (build included).
TIME_LIMIT=${TIME_LIMIT:-3600}

if [ "$(id -u)" -ne 0 ]; then
    echo "bgp.sh: needs root (network namespaces)" >&2
    exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"
tests/bench/install-packages bird2 nftables iproute2 python3

profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)
out=$(mktemp /tmp/vipd-bgp-bench.XXXXXX)
trap 'rm -f "$out"' EXIT

if [ -n "${RESULTS:-}" ]; then
    cp "$RESULTS" "$out"
else
    echo "bgp.sh: building and running ($PROFILE, $REPEATS rounds)"
    BENCH_REPEATS=$REPEATS VIPD_E2E=required timeout "$TIME_LIMIT" \
        cargo test -q "${profile_flag[@]}" -p vipd --test integration -- \
        --ignored --exact announce_bench::announce_benchmark --nocapture --test-threads=1 |
        tee "$out" | grep --line-buffered -E '^(RESULT|FAILED|DETAIL)'
fi

if grep -q '^FAILED' "$out"; then
    echo "bgp.sh: some runs failed (above); the numbers are over the runs that completed" >&2
fi

bird_version=$(bird --version 2>&1 | sed -n 1p)
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)"
section=$(python3 - "$out" "$REPEATS" "$PROFILE" "$bird_version" "$machine" "$(date -u '+%Y-%m-%d %H:%M UTC')" <<'EOF'
import re, statistics, sys
path, repeats, profile, bird, machine, date = sys.argv[1:]
spread, withdraw, flows, failed, reasons = [], {}, {}, [], {}
detail = re.compile(r'(\d+) × "([^"]*)", started (-?[\d.]+) to (-?[\d.]+) ms')
for line in open(path):
    words = line.split()
    if not words:
        continue
    if words[0] == "DETAIL":
        for count, reason, first, last in detail.findall(line):
            known = reasons.setdefault(words[1], {}).setdefault(reason, [0, float(first), float(last)])
            known[0] += int(count)
            known[1] = min(known[1], float(first))
            known[2] = max(known[2], float(last))
    if words[0] == "FAILED":
        failed.append(" ".join(words[1:4]))
    if words[0] != "RESULT":
        continue
    if words[1] == "spread":
        spread.append([int(word) for word in words[3:8]])
    elif words[1] == "withdraw":
        case, node = words[2], words[3]
        took, fails, attempted, longest = float(words[5]), int(words[6]), int(words[7]), float(words[8])
        withdraw.setdefault(case, []).append((took, fails, attempted, longest, node))
    elif words[1] == "flows":
        mode, node = words[2], words[3]
        numbers = [int(word) for word in words[5:9]]
        flows.setdefault((mode, node), []).append(numbers)

def ms(value):
    return f"{value:,.1f}"

rows = []
spread_text = "not measured"
if spread:
    totals = [sum(run[i] for run in spread) for i in range(5)]
    served = sum(totals[:3]) or 1
    shares = ", ".join(f"lb{i + 1} {count:,} ({100 * count / served:.1f} %)" for i, count in enumerate(totals[:3]))
    spread_text = f"{shares}; {totals[3]} of {totals[4]:,} failed"
labels = {
    "backend-failure": "node's backend dies → route withdrawn",
    "sigterm": "SIGTERM (planned drain) → route withdrawn",
    "sigkill": "SIGKILL of the node's vipd → router drops the next hop",
    "link-cut-hold": "node's uplink blackholed, BFD off (hold time 3 s)",
    "link-cut-bfd": "node's uplink blackholed, BFD 100 ms × 3",
}
for case, label in labels.items():
    runs = withdraw.get(case, [])
    if not runs:
        rows.append(f"| {label} | n/a | n/a | n/a |")
        continue
    took = [run[0] for run in runs]
    fails = sum(run[1] for run in runs)
    attempted = sum(run[2] for run in runs)
    longest = max(run[3] for run in runs)
    took_text = f"{ms(statistics.median(took))} ms ({ms(min(took))}–{ms(max(took))}, {len(runs)} run{'s' if len(runs) != 1 else ''})"
    rows.append(f"| {label} | {took_text} | {fails} / {attempted:,} | {ms(longest)} ms |")

why = []
for case, label in labels.items():
    for reason, (count, first, last) in sorted(reasons.get(case, {}).items()):
        why.append(f"- {label}: {count} × `{reason}`, started {first:.1f} to {last:.1f} ms after the failure")
why_text = "\n".join(why) if why else "- none"

flow_rows = []
for node in ("lb1", "lb2", "lb3"):
    cells = []
    for mode in ("default", "resilient"):
        runs = flows.get((mode, node), [])
        if not runs:
            cells += ["n/a", "n/a"]
            continue
        broken, survivors, lost, withdrawn = (sum(run[i] for run in runs) for i in range(4))
        cells += [f"{broken} / {survivors}", f"{lost} / {withdrawn}"]
    flow_rows.append(f"| {node} | " + " | ".join(cells) + " |")
totals, broken_by_mode = [], {}
for mode in ("default", "resilient"):
    runs = [run for (m, _), values in flows.items() if m == mode for run in values]
    broken = sum(run[0] for run in runs)
    survivors = sum(run[1] for run in runs)
    broken_by_mode[mode] = broken if survivors else None
    totals.append(f"{broken} / {survivors} ({100 * broken / survivors:.1f} %)" if survivors else "n/a")
resilient_broken = broken_by_mode["resilient"]
resilient_text = ("no connection on a surviving node broke" if resilient_broken == 0
                  else f"{resilient_broken} connections on surviving nodes broke" if resilient_broken
                  else "not measured")
backend_failed = ", ".join(str(run[1]) for run in withdraw.get("backend-failure", [])) or "n/a"
sigterm_runs = withdraw.get("sigterm", [])
sigterm_failed = sum(run[1] for run in sigterm_runs)
sigterm_attempted = sum(run[2] for run in sigterm_runs)
sigterm_text = f"{sigterm_failed} of {sigterm_attempted:,} new connections failed in the SIGTERM runs above"

failures = ""
if failed:
    failures = "\nRuns that did not complete: " + ", ".join(failed) + ".\n"
print(f"""<!-- bgp-bench:start -->
## Announced VIPs (BGP, ECMP)

Written by `tests/bench/bgp.sh` on {date} ({repeats} rounds, {profile} build of vipd). Machine:
{machine}. Routing daemon: {bird} (Debian bird2) on the router and on every node.
Rerun with `tests/bench/bgp.sh` (as root; installs bird2 and nftables if missing).

Lab (vipd-lab's `RoutedLab`, network namespaces): a router running BIRD with an eBGP session to
each of three nodes, `merge paths on` in its kernel protocol and `fib_multipath_hash_policy=1`
(L4 hash), hold time 3 s; three nodes lb1..lb3, each running vipd and BIRD with
deploy/bird/vipd-node.conf, announcing one VIP (203.0.113.100) with a frontend on port 80 and
one backend on the node (it names its node, then echoes); a client behind the router. vipd tracks
its frontend (`min_up: 1`, TCP checks every 100 ms, fall 2), `withdraw_delay: 3s`. Load: a new
connection from the client every 2 ms (each must connect and be greeted within 2 s, else it
failed), the failure 1 s into 4 s of load; each round fails another node. Times are from the
failure to the moment the router's kernel route no longer had the node as a next hop
(`ip monitor route` in the router's namespace).

**Spread** of new connections, one per millisecond for 3 s per round: {spread_text}.

| what | router withdraws the node after: median (min–max) | failed / attempted connections | longest connection |
|---|---|---|---|
""" + "\n".join(rows) + f"""

Why the failed connections failed, summed over the rounds:

{why_text}

- **Backend dies**: connections that reached the node between its backend's death and the
  withdrawal; vipd accepted them and had no server to give them. The withdrawal comes before the
  health checks could fail twice (2 × 100 ms): under load, `error_limit` (3 refused client
  connections, the default) marks the server down at once, and the frontend tracker withdraws
  at once. Failed connections per run: {backend_failed}.
- **SIGTERM**: vipd removes the VIP from `vipd-announce` first and serves for `withdraw_delay`;
  BIRD's withdrawal reaches the router as an UPDATE while the node still serves everything the
  router sends it.
- **SIGKILL**: the TUN devices die with the process, so BIRD withdraws within milliseconds
  (no hold time involved). The failed connections started in the milliseconds around the kill,
  before the withdrawal, and were connected to the dying node (a lost SYN would have been retransmitted after 1 s along
  the new route and served): nothing answered them and no reset came, as the VIP had left with
  the device, so the client waited for its own timeout. A client that sends first gets a reset
  from another node instead, as its next segment follows the new route.
- **Link cut**: the router keeps sending to a node it cannot reach until BFD (3 × 100 ms) or the
  hold time (3 s in the lab; 9 s with the shipped snippet's `hold time 9` against a router that
  asks for more) notices; lost SYNs are retransmitted after 1 s, to the same node if it is still
  a next hop. With BFD the withdrawal beats the first retransmission: connections are delayed
  (longest ≈ 1 s), not lost. After the link came back, the node's BIRD waits its `error wait
  time` before it reconnects: BIRD's default (60 s, up to 300 s) kept a node out for more than
  20 s in an early run, so the shipped snippet sets 5 s (backing off to 60 s); the benchmark
  restarts the node's BIRD after each cut so that every round starts alike.

**Established connections when a node is withdrawn.** 300 idle connections through the VIP, then
one node withdrawn (its vipd SIGTERMed: the VIP leaves the announcement at once, vipd keeps
serving what still reaches it for `withdraw_delay`), then every connection checked by sending a
byte and reading its echo (a connection the router now sends to another node gets a reset
there). Broken / open, summed over the rounds:

| withdrawn node | default hash: broken on surviving nodes | default hash: broken on the withdrawn node | resilient group: broken on surviving nodes | resilient group: broken on the withdrawn node |
|---|---|---|---|---|
""" + "\n".join(flow_rows) + f"""

Broken on the surviving nodes, all runs: default hash {totals[0]}, resilient group {totals[1]}.

- **Default multipath (hash-threshold, RFC 2992)**: each next hop owns a contiguous range of the
  hash space, in route order; withdrawing the first or the last of three moves the middle one's
  boundary, so about half of the middle node's connections are sent to a neighbour and reset
  (a sixth of all connections); withdrawing the middle one moves no survivor's range.
- **Resilient group** (64 buckets, idle timer 120 s, the kernel's resilient next-hop groups): only
  the withdrawn node's buckets move: {resilient_text}.
- **The withdrawn node's own connections break in both cases**: the router sends their packets to
  another node. `withdraw_delay` saves the connections that are *opened* during it
  ({sigterm_text}), not the established ones: plan a drain where
  clients reconnect.
- **Neither routing daemon installs resilient groups for BGP routes**: BIRD 2.0.12 installs a
  multipath route with its next hops inline (RTA_MULTIPATH; `ip route` shows no `nhid`), never
  as nexthop objects. FRR 8.4 (Debian frr 8.4.4: zebra and bgpd run by hand in a router
  namespace of this machine against three BIRD speakers) installs BGP multipath routes through
  nexthop objects (`nhid`; `ip nexthop` shows `proto zebra` groups) but always of the
  hash-threshold kind; its `nexthop-group ... resilient buckets` command is not in
  8.4 (a later FRR release added it) and applies to named nexthop groups (sharpd's,
  pbrd's), not to the groups zebra makes for routes bgpd learns (FRR's bug tracker reports the
  option ignored even there, in 10.0). So the resilient column is the kernel's resilient group
  **installed by the benchmark** (`ResilientMirror` in tests/integration/support/ecmp.rs): it follows BIRD's route
  with `ip monitor` and re-expresses its next hops as `ip nexthop ... type resilient` plus a route
  of a lower metric, within milliseconds of BIRD's change. A router that installs resilient
  groups itself (or a hardware router with resilient ECMP) behaves as that column shows.
- A node that **returns** to a resilient group gets buckets only as they go idle (120 s without
  a packet by default) or when `unbalanced_timer` forces it: in a check by hand, a third next hop
  added back to a group of two had none of its 64 buckets right after. Until then it serves
  few new connections. By the kernel's documentation, a long-idle connection whose bucket moves
  to the returning node is reset like under the default hash (not measured here).
{failures}<!-- bgp-bench:end -->""")
EOF
)
echo
echo "$section"

[ "${WRITE_DOC:-1}" = 0 ] && exit 0
tests/bench/write-section bgp-bench "$section"
