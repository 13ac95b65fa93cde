#!/usr/bin/env bash
# Preflight and blast radius: a run that cannot run gives exit 3 with every reason and injects
# nothing; targets no scenario can mean are refused; plan shows what a run would touch.
set -uo pipefail

name=preflight
. "$(dirname "$0")/lib.sh"

# An external target in this shell's process group (so faultline's too), with limits 3000:5000.
start_ext hardened

scenario() { # FILE "TARGET KEYS" FAULT...
	local file=$1 target=$2
	shift 2
	cat >"$file" <<EOF
version: 1
name: preflight
target: {url: "$ext_url", $target}
load: {rate: 20/s, connections: 4}
slo: {good: {latency: 250ms}, survival_ratio: 1%}
phases: {baseline: 1s, recovery: 500ms}
faults:
EOF
	for f in "$@"; do echo "  - $f" >>"$file"; done
}
host_view() {
	bash "$src/scripts/residue.sh" show
	echo "## target"
	limit_of "$ext"
	state_of "$ext"
}
host_view >"$tmp/before"

# 1. Three faults, each unrunnable for its own reason: exit 3, every reason listed, nothing injected.
scenario "$tmp/three.yaml" "pid: $ext" \
	"{name: freeze, type: process.pause, duration: 2s, scope: group}" \
	"{name: above, type: fd.exhaust, duration: 2s, limit: 6000}" \
	"{name: raise, type: fd.exhaust, duration: 2s, limit: 10, hard: 6000}"
"$fl" run "$tmp/three.yaml" --state-dir "$state" --report-dir "$tmp/three.d" >"$tmp/three.out" 2>&1 &
run=$!
# while it runs (baseline included), the target is never touched
touched=""
while kill -0 "$run" 2>/dev/null; do
	[ "$(limit_of "$ext")" = "3000 5000" ] && [ "$(state_of "$ext")" != T ] || touched="$(limit_of "$ext") $(state_of "$ext")"
	sleep 0.05
done
wait "$run"
rc=$?
problems=""
[ "$rc" -eq 3 ] || problems="$problems exit $rc, want 3;"
grep -q "freeze (process.pause): the target shares faultline's own process group" "$tmp/three.out" || problems="$problems freeze's reason missing;"
grep -q "above (fd.exhaust): limit 6000 is above the hard limit 5000" "$tmp/three.out" || problems="$problems above's reason missing;"
grep -q "raise (fd.exhaust): raising the hard RLIMIT_NOFILE (5000 -> 6000) needs CAP_SYS_RESOURCE" "$tmp/three.out" || problems="$problems raise's reason missing;"
grep -q "nothing was injected" "$tmp/three.out" || problems="$problems no 'nothing was injected';"
[ -z "$touched" ] || problems="$problems the target was touched ($touched);"
ls "$state"/*.journal >/dev/null 2>&1 && problems="$problems a journal was left;"
if [ -z "$problems" ]; then
	ok "three unrunnable faults: exit 3 naming all three reasons, the target never touched, no journal left"
else
	bad "three unrunnable faults:$problems" "$tmp/three.out"
fi

# 2. plan finds the same target read-only and runs the same checks: what run would touch, and why not.
"$fl" plan "$tmp/three.yaml" >"$tmp/plan.out" 2>&1
rc=$?
problems=""
[ "$rc" -eq 0 ] || problems="$problems exit $rc;"
grep -q "now: pid $ext (hardened)" "$tmp/plan.out" || problems="$problems no resolved pid;"
grep -q "cgroup v2 .*$(awk -F: '$1 == 0 {print $3}' "/proc/$ext/cgroup")" "$tmp/plan.out" || problems="$problems no cgroup;"
[ "$(grep -c 'now: FAILS' "$tmp/plan.out")" -eq 3 ] || problems="$problems not three failing checks;"
grep -q "now: FAILS: limit 6000 is above the hard limit 5000" "$tmp/plan.out" || problems="$problems above's reason missing;"
scenario "$tmp/good.yaml" "pid: $ext" "{name: squeeze, type: fd.exhaust, duration: 2s, limit: 20}"
"$fl" plan "$tmp/good.yaml" >"$tmp/plan-good.out" 2>&1
grep -q "now: passes" "$tmp/plan-good.out" || problems="$problems a runnable fault does not pass;"
if [ -z "$problems" ]; then
	ok "plan shows the pid and cgroup a run would touch and each fault's preflight verdict now"
else
	bad "plan:$problems" "$tmp/plan.out"
fi

# 3. Targets no scenario can mean, refused whatever allow_host_wide says: an ancestor of faultline
# (this test shell), and a kernel thread.
scenario "$tmp/kin.yaml" "pid: $$" "{name: squeeze, type: fd.exhaust, duration: 2s, limit: 20}"
echo "allow_host_wide: true" >>"$tmp/kin.yaml"
mylimit=$(limit_of $$)
"$fl" run "$tmp/kin.yaml" --state-dir "$state" --report-dir "$tmp/kin.d" >"$tmp/kin.out" 2>&1
rc=$?
if [ "$rc" -eq 3 ] && grep -q "pid $$ (bash) is an ancestor of this faultline" "$tmp/kin.out" &&
	[ "$(limit_of $$)" = "$mylimit" ]; then
	ok "the shell that started faultline is refused as a target (exit 3), even with allow_host_wide"
else
	bad "ancestor target: exit $rc, limit $(limit_of $$) (was $mylimit)" "$tmp/kin.out"
fi
"$fl" plan "$tmp/kin.yaml" >"$tmp/kin-plan.out" 2>&1
grep -q "now: REFUSED: pid $$ (bash) is an ancestor" "$tmp/kin-plan.out" && ok "plan says the ancestor would be refused" ||
	bad "plan of an ancestor target" "$tmp/kin-plan.out"

kthread=""
for k in 2 3 4 5; do
	flags=$(awk '{print $9}' "/proc/$k/stat" 2>/dev/null) || continue
	[ -n "$flags" ] && (((flags & 0x200000) != 0)) && { kthread=$k; break; }
done
if [ -n "$kthread" ]; then
	scenario "$tmp/kthread.yaml" "pid: $kthread" "{name: freeze, type: process.pause, duration: 2s, scope: process}"
	echo "allow_host_wide: true" >>"$tmp/kthread.yaml"
	"$fl" run "$tmp/kthread.yaml" --state-dir "$state" --report-dir "$tmp/kthread.d" >"$tmp/kthread.out" 2>&1
	rc=$?
	if [ "$rc" -eq 3 ] && grep -q "pid $kthread is a kernel thread" "$tmp/kthread.out"; then
		ok "kernel thread $kthread ($(cat "/proc/$kthread/comm")) refused as a target (exit 3)"
	else
		bad "kernel thread target: exit $rc" "$tmp/kthread.out"
	fi
else
	ok "no kernel thread visible in this pid namespace: nothing to refuse (checked pids 2-5)"
fi

# 4. pid 1 is host-wide: invalid without allow_host_wide (exit 2, file:line:col), nothing started.
scenario "$tmp/init.yaml" "pid: 1" "{name: squeeze, type: fd.exhaust, duration: 2s, limit: 20}"
"$fl" run "$tmp/init.yaml" --state-dir "$state" >"$tmp/init.out" 2>&1
rc=$?
if [ "$rc" -eq 2 ] && grep -q "init.yaml:3:.*pid 1 is the whole host: refused" "$tmp/init.out"; then
	ok "pid 1 without allow_host_wide: exit 2 at its line and column"
else
	bad "pid 1: exit $rc" "$tmp/init.out"
fi

# 5. list probes every injector on this host and says what limits it.
"$fl" list >"$tmp/list.out" 2>&1
rc=$?
problems=""
[ "$rc" -eq 0 ] || problems="$problems exit $rc;"
[ "$(grep -c '^  this host: ' "$tmp/list.out")" -eq "$(grep -c '^[a-z]*\.[a-z]*$' "$tmp/list.out")" ] ||
	problems="$problems not every injector has a 'this host' line;"
caps=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
if (((0x$caps >> 24 & 1) == 0)); then # CAP_SYS_RESOURCE
	grep -A3 '^fd.exhaust$' "$tmp/list.out" | grep -q "available; note: no CAP_SYS_RESOURCE: \`hard\` is refused" ||
		problems="$problems fd.exhaust does not say CAP_SYS_RESOURCE is missing;"
fi
if [ -z "$problems" ]; then
	ok "list: every injector probed on this host, missing capabilities named"
else
	bad "list:$problems" "$tmp/list.out"
fi

host_view >"$tmp/after"
if diff "$tmp/before" "$tmp/after" >"$tmp/diff"; then
	ok "host and target exactly as before"
else
	bad "host changed" "$tmp/diff"
fi
finish
