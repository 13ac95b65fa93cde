#!/usr/bin/env bash
# Nothing left behind: SIGKILL the controller (and its guardian), hang it, tear its journal - the host comes back exactly.
set -uo pipefail

name=recovery
. "$(dirname "$0")/lib.sh"

# fd.exhaust and process.pause on the external target, held for 30 s unless someone reverts them.
write_scenario() { # NAME HEARTBEAT
	cat >"$tmp/$1.yaml" <<EOF
version: 1
name: $1
target: {url: "$ext_url", pid: $ext}
load: {rate: 20/s, connections: 4, timeout: 500ms}
slo: {good: {latency: 250ms}, survival_ratio: 1%, baseline_ratio: 50%}
phases: {baseline: 1s, recovery: 1s}
faults:
  - {name: squeeze, type: fd.exhaust, duration: 30s, limit: 20}
  - {name: freeze, type: process.pause, at: 100ms, duration: 30s, scope: process}
guardrails: {heartbeat: $2}
EOF
}

# Start a drill and wait until both faults are in force.
start_drill() { # NAME
	"$fl" run "$tmp/$1.yaml" --state-dir "$state" --report-dir "$tmp/$1.d" >"$tmp/$1.out" 2>&1 &
	flpid=$!
	for _ in $(seq 100); do
		grep -q "applied  freeze" "$tmp/$1.out" 2>/dev/null && break
		sleep 0.05
	done
	guardian=$(pgrep -P "$flpid" -f "faultline run" | head -1)
}

restored_within() { # MS -> elapsed or fail
	local t0 limit=$1 l s
	t0=$(now_ms)
	while [ $(($(now_ms) - t0)) -lt "$limit" ]; do
		l=$(limit_of "$ext")
		s=$(state_of "$ext")
		if [ "$l" = "3000 5000" ] && [ "$s" != T ]; then
			echo $(($(now_ms) - t0))
			return 0
		fi
		sleep 0.02
	done
	echo "never (limit '$(limit_of "$ext")', state $(state_of "$ext"))"
	return 1
}

start_ext naive

# 1. SIGKILL the controller mid-fault: its guardian reverts both faults within 3 s.
write_scenario k1 5s
start_drill k1
if [ "$(limit_of "$ext")" = "20 5000" ] && [ "$(state_of "$ext")" = T ]; then
	kill -9 "$flpid"
	wait "$flpid" 2>/dev/null
	if t=$(restored_within 3000); then ok "SIGKILL mid-fault: guardian restored limit and SIGCONT in $t ms"; else bad "SIGKILL mid-fault: $t" "$tmp/k1.out"; fi
	sleep 0.3
	if ls "$state"/*.journal >/dev/null 2>&1; then bad "journal left after guardian recovery"; else ok "guardian removed the journal"; fi
else
	bad "faults not in force before the kill (limit $(limit_of "$ext"), state $(state_of "$ext"))" "$tmp/k1.out"
	kill -9 "$flpid" 2>/dev/null
fi

# 2. A hung controller (SIGSTOP): no heartbeat for 1 s, the guardian kills it and reverts.
write_scenario k2 1s
start_drill k2
kill -STOP "$flpid"
if t=$(restored_within 4000); then ok "hung controller: guardian reverted after the 1 s heartbeat, in $t ms"; else bad "hung controller: $t" "$tmp/k2.out"; fi
sleep 0.3
if kill -0 "$flpid" 2>/dev/null && [ "$(state_of "$flpid" 2>/dev/null)" != Z ]; then bad "the hung controller was not killed"; kill -9 "$flpid"; else ok "the hung controller was killed"; fi
wait "$flpid" 2>/dev/null

# 3. Controller AND guardian SIGKILLed: the journal stays; run refuses; recover reverts; idempotent.
write_scenario k3 5s
start_drill k3
kill -9 "$guardian" "$flpid"
wait "$flpid" 2>/dev/null
sleep 0.2
if [ "$(limit_of "$ext")" = "20 5000" ] && ls "$state"/*.journal >/dev/null 2>&1; then
	ok "both killed: the faults and the journal remain (as they must, for recover)"
else
	bad "both killed: limit $(limit_of "$ext"), journal: $(ls "$state")"
fi
"$fl" run "$tmp/k1.yaml" --state-dir "$state" >"$tmp/refuse.out" 2>&1
rc=$?
if [ "$rc" -eq 3 ] && grep -q "an earlier run left faults behind.*faultline recover" "$tmp/refuse.out"; then
	ok "run refuses while an unrecovered journal exists (exit 3, says to run recover)"
else
	bad "run over a dead run's journal: exit $rc" "$tmp/refuse.out"
fi
"$fl" recover --state-dir "$state" >"$tmp/recover.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ "$(limit_of "$ext")" = "3000 5000" ] && [ "$(state_of "$ext")" != T ] &&
	grep -q "reverted squeeze (fd.exhaust)" "$tmp/recover.out" && grep -q "reverted freeze (process.pause)" "$tmp/recover.out"; then
	ok "recover reverted both faults exactly (exit 0)"
else
	bad "recover: exit $rc, limit $(limit_of "$ext"), state $(state_of "$ext")" "$tmp/recover.out"
fi
"$fl" recover --state-dir "$state" >"$tmp/recover2.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && grep -q "0 journal(s)" "$tmp/recover2.out"; then ok "recover is idempotent"; else bad "second recover: exit $rc" "$tmp/recover2.out"; fi

# 4. A torn journal: the damaged tail is reported and ignored; the good records are still reverted.
mkdir -p "$state"
"$fl" run "$tmp/k1.yaml" --state-dir "$state" --report-dir "$tmp/k4.d" >"$tmp/k4.out" 2>&1 &
flpid=$!
for _ in $(seq 100); do grep -q "applied  freeze" "$tmp/k4.out" 2>/dev/null && break; sleep 0.05; done
guardian=$(pgrep -P "$flpid" -f "faultline run" | head -1)
kill -9 "$guardian" "$flpid"
wait "$flpid" 2>/dev/null
j=$(ls "$state"/*.journal)
printf 'A 99 half-written fd.exhaust pid=1 sta' >>"$j"
"$fl" recover --state-dir "$state" >"$tmp/torn.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && grep -q "1 damaged record" "$tmp/torn.out" && [ "$(limit_of "$ext")" = "3000 5000" ]; then
	ok "torn journal: damaged tail ignored and reported, faults reverted"
else
	bad "torn journal: exit $rc, limit $(limit_of "$ext")" "$tmp/torn.out"
fi

# 6. A healthy run longer than a short heartbeat is never killed by its own guardian.
cat >"$tmp/k6.yaml" <<EOF
version: 1
name: k6
target: {url: "$ext_url", pid: $ext}
load: {rate: 20/s, connections: 4, timeout: 500ms}
slo: {good: {latency: 250ms}, survival_ratio: 1%, baseline_ratio: 50%}
phases: {baseline: 1s, recovery: 1s}
faults:
  - {name: squeeze, type: fd.exhaust, duration: 2s, limit: 64}
guardrails: {heartbeat: 300ms}
EOF
"$fl" run "$tmp/k6.yaml" --state-dir "$state" --report-dir "$tmp/k6.d" >"$tmp/k6.out" 2>&1
rc=$?
if [ "$rc" -le 1 ] && ! grep -q "guardian" "$tmp/k6.out" && [ "$(limit_of "$ext")" = "3000 5000" ]; then
	ok "a 4 s run with a 300 ms heartbeat finishes on its own (exit $rc)"
else
	bad "healthy run with a short heartbeat: exit $rc" "$tmp/k6.out"
fi

# 5. A launched target and SIGKILL: the target dies with the controller, its cgroups are removed.
p=$(port)
d=$(port)
cat >"$tmp/k5.yaml" <<EOF
version: 1
name: k5
target:
  url: http://127.0.0.1:$p/api/report
  run: [$targets/naive, -listen, "127.0.0.1:$p", -downstream-listen, "127.0.0.1:$d"]
load: {rate: 20/s, connections: 4}
slo: {good: {latency: 250ms}, survival_ratio: 1%}
phases: {baseline: 1s, recovery: 1s}
faults:
  - {name: squeeze, type: fd.exhaust, duration: 30s, limit: 20}
EOF
"$fl" run "$tmp/k5.yaml" --state-dir "$state" --report-dir "$tmp/k5.d" >"$tmp/k5.out" 2>&1 &
flpid=$!
for _ in $(seq 200); do grep -q "applied  squeeze" "$tmp/k5.out" 2>/dev/null && break; sleep 0.05; done
tpid=$(pgrep -f "listen 127.0.0.1:$p" | head -1)
kill -9 "$flpid"
wait "$flpid" 2>/dev/null
# The target dies at once (PDEATHSIG); its v2 cgroup once outlived it by more than 3 s here
# (init reaps the orphaned zombie on its own schedule), so this case allows 10 s.
gone=no
for _ in $(seq 200); do
	if ! pgrep -f "listen 127.0.0.1:$p" >/dev/null && ! find /sys/fs/cgroup -maxdepth 2 -name "faultline-*" | grep -q . &&
		! ls "$state"/*.journal >/dev/null 2>&1; then
		gone=yes
		break
	fi
	sleep 0.05
done
if [ -n "$tpid" ] && [ "$gone" = yes ]; then
	ok "launched target (pid $tpid) gone, its cgroups and journal removed, within 10 s of SIGKILL"
else
	bad "launched target after SIGKILL: pid '$tpid' still $(pgrep -f "listen 127.0.0.1:$p"), cgroups: $(find /sys/fs/cgroup -maxdepth 2 -name 'faultline-*')" "$tmp/k5.out"
fi

# 7. The sweep: a dead run's owned cgroups whose journal is lost are removed (and what ran in them
#    killed); a live run's (even with another state dir), a user's look-alike and user objects stay.
cgmem=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ {print $2; exit}' /proc/mounts)
cg2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
sleep 0 & deadpid=$!
wait "$deadpid"
orphan="faultline-$(date -u +%Y%m%dT%H%M%S)-$deadpid-beef"
lookalike="faultline-prod-$$"
userdir="user-keep-$$"
ns="fl-sweep-$$"
mkdir "$cgmem/$orphan" "$cg2/$orphan" "$cgmem/$lookalike" "$cgmem/$userdir"
in_cgroup() { # DIR: start a sleeper inside it; its pid in $last (no $(...): the sleeper would hold the pipe)
	bash -c "echo \$\$ >'$1/cgroup.procs'; exec sleep 300" </dev/null >/dev/null 2>&1 &
	last=$!
	pids+=("$last")
}
in_cgroup "$cgmem/$orphan"; orphan_proc=$last
in_cgroup "$cgmem/$lookalike"; look_proc=$last
in_cgroup "$cgmem/$userdir"; user_proc=$last
ip netns add "$ns"
ip netns exec "$ns" sh -c 'ip link set lo up; tc qdisc add dev lo root tbf rate 1mbit burst 32kb latency 50ms;
	iptables -A OUTPUT -p tcp --dport 9 -m comment --comment user-rule -j ACCEPT'
user_view() { ip netns exec "$ns" sh -c 'tc qdisc show dev lo; iptables -S OUTPUT'; }
user_before=$(user_view)
# a live run launched with another state dir: its controller is alive, so its cgroups are its own
p=$(port)
d=$(port)
cat >"$tmp/k7.yaml" <<EOF
version: 1
name: k7
target:
  url: http://127.0.0.1:$p/api/report
  run: [$targets/hardened, -listen, "127.0.0.1:$p", -downstream-listen, "127.0.0.1:$d"]
load: {rate: 20/s, connections: 4}
slo: {good: {latency: 250ms}, survival_ratio: 1%}
phases: {baseline: 1s, recovery: 1s}
faults:
  - {name: squeeze, type: fd.exhaust, duration: 30s, limit: 200}
EOF
"$fl" run "$tmp/k7.yaml" --state-dir "$tmp/other-state" --report-dir "$tmp/k7.d" >"$tmp/k7.out" 2>&1 &
flpid=$!
for _ in $(seq 200); do grep -q "applied  squeeze" "$tmp/k7.out" 2>/dev/null && break; sleep 0.05; done
live=$(find "$cgmem" -maxdepth 1 -name "faultline-*-$flpid-*" | head -1)
sleep 0.2
"$fl" recover --state-dir "$state" >"$tmp/sweep.out" 2>&1
rc=$?
sleep 0.1
problems=""
[ "$rc" -eq 0 ] || problems="$problems exit $rc;"
grep -q "swept cgroup $cgmem/$orphan (run ${orphan#faultline-}: no journal and its controller is gone)" "$tmp/sweep.out" || problems="$problems no report of the v1 sweep;"
grep -q "swept cgroup $cg2/$orphan " "$tmp/sweep.out" || problems="$problems no report of the v2 sweep;"
grep -q "2 orphaned object(s) swept" "$tmp/sweep.out" || problems="$problems wrong sweep count;"
[ -e "$cgmem/$orphan" ] && problems="$problems orphan v1 cgroup still there;"
[ -e "$cg2/$orphan" ] && problems="$problems orphan v2 cgroup still there;"
kill -0 "$orphan_proc" 2>/dev/null && [ "$(state_of "$orphan_proc")" != Z ] && problems="$problems process in the orphan cgroup not killed;"
[ -n "$live" ] && [ -d "$live" ] || problems="$problems the live run's cgroup ($live) was swept;"
grep -q "applied  squeeze" "$tmp/k7.out" && kill -0 "$flpid" 2>/dev/null || problems="$problems the live run did not run;"
for keep in "$lookalike:$look_proc" "$userdir:$user_proc"; do
	[ -d "$cgmem/${keep%%:*}" ] || problems="$problems user cgroup ${keep%%:*} removed;"
	kill -0 "${keep#*:}" 2>/dev/null || problems="$problems process in ${keep%%:*} killed;"
done
[ "$(user_view)" = "$user_before" ] || problems="$problems the user's qdisc or iptables rule changed;"
if [ -z "$problems" ]; then
	ok "sweep: a dead run's journal-less cgroups (v1+v2) removed and their process killed; a live run's, a look-alike, a user's cgroup, qdisc and rule untouched"
else
	bad "sweep:$problems" "$tmp/sweep.out"
fi
kill -INT "$flpid"
wait "$flpid" 2>/dev/null
kill -9 "$look_proc" "$user_proc" 2>/dev/null
wait "$look_proc" "$user_proc" 2>/dev/null
sleep 0.1
rmdir "$cgmem/$lookalike" "$cgmem/$userdir" "$cgmem/$orphan" "$cg2/$orphan" 2>/dev/null
ip netns del "$ns"

if pgrep -af "faultline run" | grep -q "$tmp"; then bad "faultline processes left: $(pgrep -af 'faultline run')"; else ok "no faultline process left"; fi
finish
