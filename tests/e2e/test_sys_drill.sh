#!/usr/bin/env bash
# Whole drills in which the demo target's connect() to its downstream fails with ECONNREFUSED half the time: the verdict each way, configured vs observed counts, nothing left behind.
set -uo pipefail

name=sys-drill
. "$(dirname "$0")/lib.sh"

before=$tmp/before
bash "$src/scripts/residue.sh" show >"$before"

# scenario NAME TARGET BACKEND
scenario() {
	local p=$(port) d=$(port)
	cat >"$tmp/$1.yaml" <<EOF
version: 1
name: $1
target:
  url: http://127.0.0.1:$p/api/report
  run: [$targets/$2, -listen, "127.0.0.1:$p", -downstream-listen, "127.0.0.1:$d", -downstream-delay, 2ms]
  stop_grace: 3s
load: {rate: 100/s, connections: 16, timeout: 2s}
slo: {good: {status: 200-299, latency: 250ms}, survival_ratio: 95%, recover_within: 5s}
phases: {baseline: 2s, recovery: 3s}
faults:
  - name: refused
    type: syscall.error
    duration: 10s
    syscalls: [connect]
    errno: ECONNREFUSED
    probability: 50%
    dst_ip: 127.0.0.1
    dst_port: $d
    backend: $3
EOF
}

# drill NAME TARGET BACKEND WANT_RC WANT_BACKEND
drill() {
	scenario "$1" "$2" "$3"
	"$fl" run "$tmp/$1.yaml" --state-dir "$state" --report-dir "$tmp/$1.d" --json "$tmp/$1.json" \
		>"$tmp/$1.out" 2>&1
	local rc=$? verdict
	verdict=$(python3 - "$tmp/$1.json" "$5" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["faults"][0]
obs, conf = f["observed"], f["configured"]
why = []
if obs.get("backend") != sys.argv[2]:
    why.append("backend %r, expected %r" % (obs.get("backend"), sys.argv[2]))
if conf.get("errno") != "ECONNREFUSED" or conf.get("probability") != "50%":
    why.append("configured %r" % conf)
m, a = obs.get("calls_matched"), obs.get("calls_failed")
# naive dials per request (hundreds of connects in 10 s); a pooled service makes few or none
if m is None or a is None or a > m:
    why.append("observed counts %r / %r" % (a, m))
elif m >= 200 and abs(a / m - 0.5) > 0.05:
    why.append("%d of %d connects failed: not 50%% +- 5" % (a, m))
print("ok %s: %s of %s connects refused (%.1f%%), survival %.2f%%" % (
    obs.get("backend"), a, m, 100.0 * a / m if m else 0, 100 * r["slo"]["survival_ratio"]["measured"])
      if not why else "; ".join(why))
EOF
	)
	if [ "$rc" -ne "$4" ]; then
		bad "$1: exit $rc, expected $4 ($verdict)" "$tmp/$1.out"
	else
		case $verdict in
		ok*) ok "$1: exit $rc; $verdict" ;;
		*) bad "$1: $verdict" "$tmp/$1.out" ;;
		esac
	fi
}

# auto on this host: BPF LSM is refused, connect is a socket call -> the cgroup backend
auto=$("$fl" list | grep -A2 '^syscall.error$' | grep -q 'runs here with: lsm' && echo lsm || echo cgroup)
# naive dials the downstream for every request: half of them fail (502), the SLO is breached
drill naive-auto naive auto 1 "$auto"
# hardened calls it over a pre-warmed pool: it needs no new connect, and survives
drill hardened-auto hardened auto 0 "$auto"
# the same failure through seccomp, for the target faultline launched
drill naive-seccomp naive seccomp 1 seccomp

bash "$src/scripts/residue.sh" show >"$tmp/after"
if diff -u "$before" "$tmp/after" >"$tmp/residue.diff"; then
	ok "nothing left behind"
else
	bad "residue after the drills" "$tmp/residue.diff"
fi
finish
