#!/usr/bin/env bash
# Whole drills against the Go demo targets: verdicts, exit codes, ratios checked against independent counts, reports parsed back.
set -uo pipefail

name=drills
. "$(dirname "$0")/lib.sh"

# scenario NAME TARGET FLAGS FAULTS-YAML SLO-YAML [LOAD-YAML]
scenario() {
	local name=$1 target=$2 flags=$3 faults=$4 slo=$5 load=${6:-"{rate: 100/s, connections: 16, timeout: 2s}"}
	local p=$(port) d=$(port)
	cat >"$tmp/$name.yaml" <<EOF
version: 1
name: $name
target:
  url: http://127.0.0.1:$p/api/report
  run: [$targets/$target, -listen, "127.0.0.1:$p", -downstream-listen, "127.0.0.1:$d" $flags]
  stop_grace: 3s
load: $load
slo: $slo
phases: {baseline: 2s, recovery: 3s}
faults:
$faults
EOF
}

# drill NAME [extra args] -> runs faultline; exit code in $rc, reports in $tmp/NAME.{json,xml,out}
drill() {
	local name=$1
	shift
	"$fl" run "$tmp/$name.yaml" --state-dir "$state" --report-dir "$tmp/$name.d" \
		--json "$tmp/$name.json" --junit "$tmp/$name.xml" "$@" >"$tmp/$name.out" 2>&1
	rc=$?
}

jq_py() { # NAME PYTHON-EXPR -> prints the value
	python3 -c "import json,sys; r=json.load(open('$tmp/$1.json')); print($2)"
}

# 1. A fault with no effect (a roomy fd limit): the target survives, exit 0, ratio >= 0.999.
scenario roomy hardened "" "  - {name: roomy, type: fd.exhaust, duration: 3s, limit: 4096}" \
	"{good: {status: 200-299, latency: 250ms}, survival_ratio: 99%, recover_within: 2s}"
drill roomy
if [ "$rc" -eq 0 ] && [ "$(jq_py roomy "r['slo']['survival_ratio']['measured'] >= 0.999")" = True ]; then
	ok "no-effect fault: exit 0, survival >= 99.9%"
else
	bad "no-effect fault (exit $rc)" "$tmp/roomy.out"
fi

# 2. A server that fails a known fraction: faultline's count agrees with the server's own, within 0.02.
scenario tenth naive ", -fail-ratio, \"0.1\"" "  - {name: noop, type: fd.exhaust, duration: 3s, limit: 4096}" \
	"{good: {status: 200-299, latency: 250ms}, survival_ratio: 80%}"
drill tenth
server=$(grep -a "final stats" "$tmp/tenth.d/target.log" | tail -1 | sed 's/.*final stats //')
if [ -n "$server" ]; then
	verdict=$(python3 - "$tmp/tenth.json" "$server" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s = json.loads(sys.argv[2])
mine_req = sum(p["requests"] for p in r["phases"])
mine_good = sum(p["good"] for p in r["phases"])
ours, theirs = mine_good / mine_req, s["ok"] / s["requests"]
print("%s ours=%.4f theirs=%.4f (%d/%d vs %d/%d)" % (abs(ours - theirs) <= 0.02 and abs(ours - 0.9) <= 0.02, ours, theirs, mine_good, mine_req, s["ok"], s["requests"]))
EOF
)
	case "$verdict" in True*) ok "ratio agrees with the server's own count: $verdict" ;; *) bad "ratio vs server count: $verdict" "$tmp/tenth.out" ;; esac
else
	bad "the server's final stats line is missing from target.log" "$tmp/tenth.d/target.log"
fi

# 3. A 2 s pause at 100 req/s with a 500 ms SLO: about a quarter of the pause window is good,
#    because requests scheduled in the last 0.5 s still finish in time (coordinated omission).
scenario pause hardened "" "  - {name: freeze, type: process.pause, duration: 2s}" \
	"{good: {status: 200-299, latency: 500ms}, survival_ratio: 10%}" "{rate: 100/s, connections: 64, timeout: 4s}"
drill pause
ratio=$(jq_py pause "r['slo']['survival_ratio']['measured']")
paused=$(jq_py pause "[f['observed'].get('pause_s') for f in r['faults']][0]")
if [ "$rc" -eq 0 ] && python3 -c "import sys; sys.exit(0 if abs($ratio - 0.25) <= 0.05 and abs($paused - 2.0) <= 0.05 else 1)"; then
	ok "pause 2s: fault-window ratio $ratio (expected ~0.25), observed pause ${paused}s"
else
	bad "pause: exit $rc ratio $ratio pause $paused" "$tmp/pause.out"
fi

# 4. fd.exhaust to 16 on naive under load: with a 50 ms downstream about ten requests are in
#    flight, each needing new fds (its dial and the downstream's accept): EMFILE, exit 1.
fdfault="  - {name: squeeze, type: fd.exhaust, duration: 4s, limit: 16}"
fdslo="{good: {status: 200-299, latency: 250ms}, survival_ratio: 95%, recover_within: 3s}"
slowdb=', -downstream-delay, "50ms"'
scenario fd-naive naive "$slowdb" "$fdfault" "$fdslo" "{rate: 200/s, connections: 32, timeout: 1s}"
drill fd-naive
if [ "$rc" -eq 1 ] && grep -qi "too many open files" "$tmp/fd-naive.d/target.log"; then
	ok "fd.exhaust 16 on naive: exit 1, 'too many open files' in its log ($(jq_py fd-naive "r['slo']['survival_ratio']['measured']"))"
else
	bad "fd.exhaust on naive: exit $rc" "$tmp/fd-naive.out"
fi

# 5. The same fault on hardened: it keeps serving on its pooled connections, exit 0.
scenario fd-hardened hardened "$slowdb" "$fdfault" "$fdslo" "{rate: 200/s, connections: 32, timeout: 1s}"
drill fd-hardened
if [ "$rc" -eq 0 ]; then
	ok "fd.exhaust 16 on hardened: exit 0 ($(jq_py fd-hardened "r['slo']['survival_ratio']['measured']"))"
else
	bad "fd.exhaust on hardened: exit $rc" "$tmp/fd-hardened.out"
fi

# 6. SIGTERM mid-fault on a target faultline did not launch: exit 4 and its limit restored exactly.
start_ext naive
cat >"$tmp/term.yaml" <<EOF
version: 1
name: term
target: {url: "$ext_url", pid: $ext}
load: {rate: 50/s, connections: 8}
slo: {good: {latency: 250ms}, survival_ratio: 50%}
phases: {baseline: 1s, recovery: 1s}
faults:
  - {name: squeeze, type: fd.exhaust, duration: 20s, limit: 20}
EOF
"$fl" run "$tmp/term.yaml" --state-dir "$state" --report-dir "$tmp/term.d" --json "$tmp/term.json" >"$tmp/term.out" 2>&1 &
flpid=$!
for _ in $(seq 100); do
	grep -q "applied  squeeze" "$tmp/term.out" 2>/dev/null && break
	sleep 0.1
done
during=$(prlimit --pid "$ext" --nofile --noheadings --output SOFT,HARD | xargs)
kill -TERM "$flpid"
wait "$flpid"
rc=$?
after=$(prlimit --pid "$ext" --nofile --noheadings --output SOFT,HARD | xargs)
if [ "$rc" -eq 4 ] && [ "$during" = "20 5000" ] && [ "$after" = "3000 5000" ] &&
	[ "$(jq_py term "r['verdict']")" = aborted ]; then
	ok "SIGTERM mid-fault: exit 4, limit $during during, restored to $after"
else
	bad "SIGTERM mid-fault: exit $rc, limit during '$during' after '$after'" "$tmp/term.out"
fi
kill "$ext" 2>/dev/null

# 7. The reports parse back and say what the contract says they say.
if python3 - "$tmp/fd-naive.json" "$tmp/fd-naive.xml" 2>"$tmp/reports.err" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
for k in ("scenario", "verdict", "exit_code", "slo", "phases", "faults", "timeline"):
    assert k in r, k
assert r["verdict"] == "fail" and r["exit_code"] == 1
assert set(r["slo"]["survival_ratio"]) >= {"target", "measured"}
assert [p["name"] for p in r["phases"]] == ["baseline", "faults", "recovery"]
assert all({"requests", "good"} <= set(p) for p in r["phases"])
f = r["faults"][0]
assert f["configured"]["limit"] == "16" and "limit_in_force" in f["observed"]
assert f["observed"]["limit_in_force"] == 16
assert len(r["timeline"]) >= 8 and {"t", "requests", "good", "p50_ms", "p99_ms", "active_faults"} <= set(r["timeline"][0])
assert any("squeeze" in s["active_faults"] for s in r["timeline"])
x = ET.parse(sys.argv[2]).getroot()
cases = x.findall(".//testcase")
assert any(c.find("failure") is not None and "survival ratio" in c.find("failure").get("message") for c in cases)
assert int(x.get("failures")) >= 1
EOF
then ok "JSON and JUnit reports parse back with the contract's fields"; else bad "reports" "$tmp/reports.err"; fi

# 8. Cannot-run paths are exit 3 with the reason, and leave nothing: a target that cannot start,
#    and a preflight refusal (a hard limit that could not be restored without CAP_SYS_RESOURCE,
#    or a limit above the hard one where the capability is there).
scenario nostart naive "" "  - {name: x, type: fd.exhaust, duration: 1s, limit: 64}" "{good: {latency: 250ms}, survival_ratio: 90%}"
sed -i "s|$targets/naive|$tmp/no-such-binary|" "$tmp/nostart.yaml"
drill nostart
if [ "$rc" -eq 3 ] && grep -q "cannot start .*no-such-binary.*No such file" "$tmp/nostart.out"; then
	ok "a target that cannot start: exit 3 with the reason"
else
	bad "target that cannot start: exit $rc" "$tmp/nostart.out"
fi
scenario refuse naive "" "  - {name: x, type: fd.exhaust, duration: 1s, limit: 64, hard: 32}" "{good: {latency: 250ms}, survival_ratio: 90%}"
drill refuse
if [ "$rc" -eq 3 ] && grep -q "preflight: x (fd.exhaust): limit 64 is above the hard limit 32" "$tmp/refuse.out" &&
	[ "$(jq_py refuse "r['verdict']")" = unrunnable ]; then
	ok "preflight refusal: exit 3, nothing injected"
else
	bad "preflight refusal: exit $rc" "$tmp/refuse.out"
fi

# nothing of ours left: no journal with pending records, no target process
if ls "$state"/*.journal >/dev/null 2>&1; then bad "journals left in $state: $(ls "$state")"; else ok "no journal left behind"; fi
if pgrep -f "$targets/" >/dev/null; then bad "target processes left: $(pgrep -af "$targets/")"; else ok "no target process left"; fi

finish
