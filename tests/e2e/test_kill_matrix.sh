#!/usr/bin/env bash
# The kill matrix: every injector x every way a run can end badly; the host must be as before within 3 s.
set -uo pipefail

name=kill-matrix
. "$(dirname "$0")/lib.sh"

# The network rows act in a namespace of the test's own (a veth with TEST-NET-1 addresses) and on
# a cgroup v2 dir of its own that the external target is moved into: never on the host's lo.
kmns=fl-km-$$
km_cg=/sys/fs/cgroup/unified/fl-km-$$

# One row per injector (and backend): TYPE|its parameters for a fault on the external target,
# or TYPE|parameters|launched for one on a target each run launches itself (seccomp needs that),
# or TYPE|parameters|launched-db for one whose launched target starts its own database (downstream).
# A new injector joins the matrix by adding its line here.
matrix=(
	"process.pause|scope: process"
	"fd.exhaust|limit: 20"
	"network.delay|delay: 50ms, backend: nfqueue, netns: $kmns, match: {interface: veth-km, dst_ip: 192.0.2.2}"
	"network.bandwidth|rate: 1Mbit/s, netns: $kmns, match: {interface: veth-km, dst_ip: 192.0.2.2}"
	"network.loss|percent: 10%, backend: cgroup, match: {direction: ingress, src_ip: 192.0.2.2}"
	"network.partition|match: {dst_ip: 192.0.2.2, dst_port: 5432}"
	"network.dns|mode: fail"
	"syscall.error|syscalls: [connect], errno: ECONNREFUSED, backend: cgroup, dst_port: 5432"
	"syscall.error|syscalls: [connect], errno: ECONNREFUSED, backend: seccomp|launched"
	"syscall.delay|syscalls: [connect], delay: 50ms|launched"
	"memory.leak|rate: 20MiB/s, limit: 24MiB|launched"
	"memory.leak|rate: 20MiB/s, limit: 24MiB, owner: target|launched"
	"cpu.burn|cores: 1, load: 20%|launched"
	"process.kill|signal: SIGTERM|launched"
	"process.pause|scope: child, comm: downstream|launched-db"
	"ports.exhaust|count: 50, netns: $kmns"
	"ports.occupy|port: 18999, netns: $kmns"
	"client.slowloris|connections: 20, interval: 1s"
)

# How each case ends the run, and the exit status that ending must give:
#   after-journal  SIGKILL (failpoint) once the record is fsync'd, before the injector acts
#   after-apply    SIGKILL (failpoint) just after apply
#   mid-fault      SIGKILL from outside while the fault is in force
#   mid-revert     SIGKILL (failpoint) after the revert, before the journal marks it
#   sigint         Ctrl-C while the fault is in force: the controller reverts, exit 4
#   guardrail      abort_below trips (a companion pause collapses the ratio): exit 4
#   apply-error    apply "fails" with its effect in place (failpoint): exit 3, reverted
cases="after-journal after-apply mid-fault mid-revert sigint guardrail apply-error"
declare -A want_rc=([after-journal]=137 [after-apply]=137 [mid-fault]=137 [mid-revert]=137
	[sigint]=4 [guardrail]=4 [apply-error]=3)

start_ext hardened
ip netns add "$kmns"
ip -n "$kmns" link add veth-km type veth peer name veth-km2
ip -n "$kmns" addr add 192.0.2.1/24 dev veth-km
ip -n "$kmns" link set veth-km up
ip -n "$kmns" link set veth-km2 up
mkdir "$km_cg"
echo "$ext" >"$km_cg/cgroup.procs"
# after lib.sh's cleanup (which kills the target and recovers): the namespace and the cgroup go
km_cleanup() {
	cleanup
	ip netns del "$kmns" 2>/dev/null
	rmdir "$km_cg" 2>/dev/null
}
trap km_cleanup EXIT

# Everything a fault could leave behind: host objects, the target's state, journals, processes.
host_view() {
	bash "$src/scripts/residue.sh" show
	echo "## target"
	limit_of "$ext"
	state_of "$ext"
	cat "/proc/$ext/cgroup"
	echo "## state dir"
	ls "$state" 2>/dev/null
	echo "## the test's netns and cgroup"
	tc -n "$kmns" qdisc show
	ip netns exec "$kmns" iptables-save 2>/dev/null | grep -E 'faultline|NFQUEUE'
	bpftool cgroup show "$km_cg" 2>/dev/null
}

scenario() { # FILE TYPE PARAMS CASE [launched]
	local dur=30s extra="" guard="{heartbeat: 5s}" tgt="{url: \"$ext_url\", pid: $ext}"
	if [ "${5:-}" = launched ]; then
		local lp=$(port)
		tgt="{url: \"http://127.0.0.1:$lp/api/report\", run: [$targets/hardened, -listen, \"127.0.0.1:$lp\", -downstream-listen, \"127.0.0.1:$(port)\"], stop_grace: 1s}"
	elif [ "${5:-}" = launched-db ]; then
		# the database is the target's child (sh execs the service in its place): its tree, its group
		local lp=$(port) dp=$(port)
		tgt="{url: \"http://127.0.0.1:$lp/api/report\", run: [sh, -c, '$targets/downstream -listen 127.0.0.1:$dp & exec \"\$0\" \"\$@\"', $targets/hardened, -listen, \"127.0.0.1:$lp\", -downstream, \"http://127.0.0.1:$dp\"], stop_grace: 1s}"
	fi
	case $4 in
	mid-revert) dur=1s ;;
	guardrail)
		extra="  - {name: companion, type: process.pause, duration: 30s, scope: process}"
		guard="{heartbeat: 5s, abort_below: 50%, for: 1s}"
		;;
	esac
	cat >"$1" <<EOF
version: 1
name: kill-matrix
target: $tgt
load: {rate: 20/s, connections: 4, timeout: 300ms}
slo: {good: {latency: 250ms}, survival_ratio: 1%, baseline_ratio: 50%, window: 500ms}
phases: {baseline: 500ms, recovery: 500ms}
faults:
  - {name: f, type: $2, duration: $dur, $3}
$extra
guardrails: $guard
EOF
}

before=$tmp/before
host_view >"$before"

for row in "${matrix[@]}"; do
	IFS='|' read -r type params launched <<<"$row"
	for c in $cases; do
		label="$type${launched:+ ($launched)} / $c"
		id=$type${launched:+-launched}${params//[^a-z]/}
		id=${id:0:60}-$c
		yaml=$tmp/$id.yaml
		out=$tmp/$id.out
		scenario "$yaml" "$type" "$params" "$c" "$launched"
		fp=""
		case $c in after-journal | after-apply | mid-revert | apply-error) fp="$c:f" ;; esac
		FAULTLINE_FAILPOINT=$fp "$fl" run "$yaml" --state-dir "$state" --report-dir "$tmp/$id.d" \
			>"$out" 2>&1 &
		flpid=$!
		in_force=""
		if [ "$c" = mid-fault ] || [ "$c" = sigint ]; then
			# a launched target first has to start and pass its baseline
			for _ in $(seq 400); do grep -q "applied  f" "$out" && break; sleep 0.02; done
			sleep 0.1
			[ "$(host_view)" != "$(cat "$before")" ] && in_force=yes
			# a launched target and its supervisor are themselves the difference; a seccomp rule
			# lives inside them: its applied line is what can be seen from here
			[ -n "$launched" ] && grep -q "applied  f" "$out" && in_force=yes
			if [ "$c" = mid-fault ]; then kill -9 "$flpid"; else kill -INT "$flpid"; fi
		fi
		wait "$flpid" 2>/dev/null
		rc=$?
		t0=$(now_ms)
		clean=no
		while [ $(($(now_ms) - t0)) -lt 3000 ]; do
			if [ "$(host_view)" = "$(cat "$before")" ]; then
				clean=yes
				break
			fi
			sleep 0.05
		done
		took=$(($(now_ms) - t0))
		if [ "$rc" -ne "${want_rc[$c]}" ]; then
			bad "$label: exit $rc, expected ${want_rc[$c]}" "$out"
		elif { [ "$c" = mid-fault ] || [ "$c" = sigint ]; } && [ -z "$in_force" ]; then
			bad "$label: the fault was never seen in force before the signal" "$out"
		elif [ "$rc" -eq 137 ] && ! grep -q "guardian: the controller .* died without finishing" "$out"; then
			bad "$label: the guardian did not notice the controller's death" "$out"
		elif [ "$rc" -eq 137 ] && ! grep -q "reverted f ($type)" "$out"; then
			bad "$label: the guardian did not revert f from the journal" "$out"
		elif [ "$clean" != yes ]; then
			bad "$label: host not as before 3 s after the run ended" "$out"
			host_view | diff -u "$before" - | sed 's/^/     /' | head -20
			"$fl" recover --state-dir "$state" >/dev/null 2>&1 # so the next case starts clean
		else
			ok "$label: exit $rc, host seen as before $took ms after (one look takes ~0.2 s)"
		fi
	done
done
finish
