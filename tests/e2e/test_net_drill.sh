#!/usr/bin/env bash
# A whole drill adding 200 ms to the target's calls to its downstream: configured vs observed in the report, the service's latency once per round trip, nothing left behind.
# Usage: test_net_drill.sh [BACKEND]   BACKEND the report must name (default: whatever auto picks here)
set -uo pipefail

name=net-drill
. "$(dirname "$0")/lib.sh"

want_backend=${1:-}
before=$tmp/before
bash "$src/scripts/residue.sh" show >"$before"

# scenario NAME TARGET DELAY -> $tmp/NAME.yaml; the downstream is in-process on its own loopback port
scenario() {
	local p=$(port) d=$(port)
	cat >"$tmp/$1.yaml" <<EOF
version: 1
name: $1
target:
  url: http://127.0.0.1:$p/api/report
  run: [$targets/$2, -listen, "127.0.0.1:$p", -downstream-listen, "127.0.0.1:$d", -downstream-delay, 2ms]
  stop_grace: 3s
load: {rate: 20/s, connections: 16, timeout: 3s}
slo: {good: {status: 200-299, latency: 2s}, survival_ratio: 90%}
phases: {baseline: 2s, recovery: 2s}
faults:
  - name: db-latency
    type: network.delay
    duration: 5s
    delay: $3
    match: {dst_ip: 127.0.0.1, dst_port: $d, protocol: tcp}
EOF
}

check_report() { # NAME DELAY_MS -> prints "ok" or why not
	python3 - "$tmp/$1.json" "$2" "$want_backend" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
delay = float(sys.argv[2])
want = sys.argv[3]
f = r["faults"][0]
obs = f["observed"]
why = []
if want and obs.get("backend") != want:
    why.append("backend %r, expected %r" % (obs.get("backend"), want))
if f["configured"].get("delay") != "%gms" % delay:
    why.append("configured delay %r" % f["configured"].get("delay"))
added = obs.get("added_rtt_ms")
if added is None or abs(added - delay) > 5:
    why.append("observed added RTT %r ms, configured %g +- 5" % (added, delay))
ph = {p["name"]: p for p in r["phases"]}
base = ph["baseline"]["latency_ms"]["p50"]
during = ph["faults"]["latency_ms"]["p50"]
# naive dials the downstream for every call: the SYN and the request each wait once, the replies
# (from the downstream's port) not at all: two round trips, so twice the delay, never four times
if not (base < 40 and 2 * delay - 5 <= during - base <= 2 * delay + 60):
    why.append("service p50 %.1f -> %.1f ms, expected +%g (two round trips)" % (base, during, 2 * delay))
print("ok backend=%s added_rtt=%.2fms service_p50 %.1f->%.1fms" % (obs.get("backend"), added or -1, base, during)
      if not why else "; ".join(why))
EOF
}

scenario delay200 naive 200ms
"$fl" run "$tmp/delay200.yaml" --state-dir "$state" --report-dir "$tmp/delay200.d" \
	--json "$tmp/delay200.json" >"$tmp/delay200.out" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
	bad "200 ms drill: exit $rc" "$tmp/delay200.out"
else
	verdict=$(check_report delay200 200)
	case $verdict in
	ok*) ok "200 ms to the downstream port: $verdict" ;;
	*) bad "200 ms drill: $verdict" "$tmp/delay200.out" ;;
	esac
fi

# the host exactly as before: no qdisc, rule, program, process or journal of the drill
bash "$src/scripts/residue.sh" show >"$tmp/after"
if diff -u "$before" "$tmp/after" >"$tmp/residue.diff"; then
	ok "nothing left behind"
else
	bad "residue after the drill" "$tmp/residue.diff"
fi
finish
