#!/usr/bin/env bash
# The BPF LSM backend of syscall.error under Debian's stock kernel in the QEMU VM, where this host refuses BPF LSM: every case must really pass inside.
# Usage: tests/vm/test_vm_sys.sh CACHE_DIR BUILD_DIR [BENCH_PREFIX]   (BENCH_PREFIX: also run bench_sys inside, see sys_inside.sh)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${1:?usage: test_vm_sys.sh CACHE_DIR BUILD_DIR [BENCH_PREFIX]}
build=${2:?usage: test_vm_sys.sh CACHE_DIR BUILD_DIR [BENCH_PREFIX]}
bench=${3:-}

if [ "$(id -u)" -ne 0 ]; then
	echo "test_vm_sys: SKIP: the tests inside the VM need root (BPF, cgroups)"
	exit 0
fi
[[ -x $build/tests/integration/test_sys_lsm ]] || {
	echo "test_vm_sys: FAIL: $build/tests/integration/test_sys_lsm is not built"
	exit 1
}
bash "$here/vm.sh" prepare "$cache" >/dev/null || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# bench files must lie in the work dir (the repo) to come back out of the VM
FL_VM_TIMEOUT=${FL_VM_TIMEOUT:-500} bash "$here/vm.sh" run "$cache" "$repo" tests/vm/sys_inside.sh "$build" ${bench:+"$bench"} | tee "$out"
rc=${PIPESTATUS[0]}
# a skip inside would be a harness or kernel problem, not a pass: every LSM case must say OK
missing=()
for t in test_probe test_check_refuses test_open_emfile test_connect test_every_hook test_sendmsg \
	test_probability test_after_max test_tgid_scope test_revert_record test_nothing_left; do
	grep -q "OK \] $t\$" "$out" || missing+=("$t")
done
if ((${#missing[@]})) || grep -q "SKIPPED \]" "$out"; then
	echo "test_vm_sys: FAIL: these BPF LSM cases did not pass inside the VM: ${missing[*]:-(some were skipped)}"
	exit 1
fi
echo "test_vm_sys: ok: every BPF LSM case passed under $(sed -n 's/^# kernel \([^,]*\),.*/\1/p' "$out" | head -n1)"
exit "$rc"
