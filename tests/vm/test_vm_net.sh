#!/usr/bin/env bash
# The network injectors under Debian's stock kernel in the QEMU VM: netem delay/loss accuracy, scope, and restore, where this host has no sch_netem.
# Usage: tests/vm/test_vm_net.sh CACHE_DIR BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${1:?usage: test_vm_net.sh CACHE_DIR BUILD_DIR}
build=${2:?usage: test_vm_net.sh CACHE_DIR BUILD_DIR}

if [ "$(id -u)" -ne 0 ]; then
	echo "test_vm_net: SKIP: the tests inside the VM need root (namespaces, tc)"
	exit 0
fi
bash "$here/vm.sh" prepare "$cache" >/dev/null || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
FL_VM_TIMEOUT=${FL_VM_TIMEOUT:-400} bash "$here/vm.sh" run "$cache" "$repo" tests/vm/net_inside.sh "$build" | tee "$out"
rc=${PIPESTATUS[0]}
# netem must really have run inside: a skip there would be a harness bug, not a pass
if ! grep -q "OK \] test_netem_delay_accuracy" "$out" || ! grep -q "OK \] test_netem_loss_accuracy" "$out" ||
	! grep -q "OK \] test_netem_jitter" "$out" ||
	! grep -q "^ok   200 ms to the downstream port: ok backend=netem" "$out"; then
	echo "test_vm_net: FAIL: the netem cases did not pass inside the VM"
	exit 1
fi
exit "$rc"
