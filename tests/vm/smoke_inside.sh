#!/usr/bin/env bash
# Runs inside the test VM for test_vm_smoke.sh: netem on a veth, BPF LSM active, and harness plumbing checks.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/inside.sh"
vm_require

fails=0
ok() { echo "ok - $*"; }
bad() {
	echo "FAIL - $*"
	fails=$((fails + 1))
}

# Average RTT in ms of a short, bounded ping from namespace A to B's address.
avg_rtt() {
	ip netns exec "$ns_a" ping -n -q -c 5 -i 0.2 -W 2 192.0.2.2 | awk -F/ '/^rtt/ { print $5 }'
}

netem_check() {
	# Unique names: cheap insurance should another test share this VM some day.
	ns_a=flvm-a-$$
	ns_b=flvm-b-$$
	trap 'ip netns del "$ns_a" 2>/dev/null || true; ip netns del "$ns_b" 2>/dev/null || true' EXIT
	vm_modprobe sch_netem veth
	ok "modprobe sch_netem veth"
	ip netns add "$ns_a"
	ip netns add "$ns_b"
	ip link add veth-a netns "$ns_a" type veth peer name veth-b netns "$ns_b"
	# TEST-NET-1 addresses, only ever inside these two namespaces (and the VM has no NIC at all).
	ip -n "$ns_a" addr add 192.0.2.1/24 dev veth-a
	ip -n "$ns_b" addr add 192.0.2.2/24 dev veth-b
	ip -n "$ns_a" link set veth-a up
	ip -n "$ns_b" link set veth-b up

	local base delayed after
	base=$(avg_rtt)
	echo "# RTT without netem: $base ms"
	# Busybox also has a tc applet; only iproute2's knows netem.
	/usr/sbin/tc -n "$ns_a" qdisc add dev veth-a root netem delay 50ms
	delayed=$(avg_rtt)
	echo "# RTT with netem delay 50ms: $delayed ms"
	if awk -v r="$delayed" 'BEGIN { exit !(r >= 45) }'; then
		ok "netem delay 50ms gives RTT $delayed ms (>= 45)"
	else
		bad "netem delay 50ms gives RTT ${delayed:-?} ms (want >= 45)"
	fi
	/usr/sbin/tc -n "$ns_a" qdisc del dev veth-a root
	after=$(avg_rtt)
	if awk -v r="$after" 'BEGIN { exit !(r < 45) }'; then
		ok "netem removed: RTT back to $after ms"
	else
		bad "netem removed but RTT is still ${after:-?} ms"
	fi
}

lsm_check() {
	local lsm
	lsm=$(cat /sys/kernel/security/lsm)
	if tr ',' '\n' <<<"$lsm" | grep -qx bpf; then
		ok "bpf is an active LSM ($lsm)"
	else
		bad "bpf missing from /sys/kernel/security/lsm ($lsm)"
	fi
}

case ${1:-smoke} in
smoke)
	echo "# kernel $(uname -r)"
	netem_check
	lsm_check
	;;
plumbing)
	# Arguments with spaces and quotes must arrive intact, in the work dir, with the harness variables.
	shift
	if [[ $# -eq 2 && $1 == "a b" && $2 == "c'\$d" ]]; then ok "arguments intact"; else bad "arguments: $(printf '<%s>' "$@")"; fi
	if [[ $PWD == "$FL_TEST_WORK" ]]; then ok "cwd is the work dir"; else bad "cwd is $PWD, want $FL_TEST_WORK"; fi
	if [[ -d $FL_VM_MODULES/lib/modules/$(uname -r) ]]; then ok "FL_VM_MODULES has this kernel's modules"; else bad "FL_VM_MODULES=$FL_VM_MODULES"; fi
	if [[ $(id -u) == 0 ]]; then ok "root"; else bad "uid $(id -u)"; fi
	# The work dir is the host's, writable: the host checks this file after the VM is gone.
	echo "written in the VM" >"$FL_TEST_MARK"
	ok "wrote $FL_TEST_MARK"
	echo "to stderr" >&2
	# Enough output to show that nothing is lost when the VM powers off right after.
	seq 1 20000
	echo "last line"
	exit 7
	;;
hang)
	echo "hanging until the harness gives up"
	sleep 3600
	;;
*)
	bad "unknown mode $1"
	;;
esac
((fails == 0))
