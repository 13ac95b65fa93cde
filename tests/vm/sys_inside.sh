#!/usr/bin/env bash
# Runs inside the test VM (Debian's kernel, with bpf in its LSM list): the BPF LSM syscall backend tests that this host's kernel refuses, and optionally bench_sys there.
# Usage (from vm.sh run): sys_inside.sh BUILD_DIR [BENCH_PREFIX]
#   BENCH_PREFIX (in the work dir): also run bench_sys lsm -> PREFIX-lsm.md, and bench_sys cgroup ->
#   PREFIX-cgroup-vm.md (the same cgroup numbers as on the host, to scale the VM's emulated costs)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/inside.sh"
vm_require

build=${1:?usage: sys_inside.sh BUILD_DIR [BENCH_PREFIX]}
bench=${2:-}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
echo "# kernel $(uname -r), active LSMs: $(cat /sys/kernel/security/lsm 2>/dev/null || echo '?')"
rc=0
# the same cmocka binary as on the host: here the probe must pass and every case run for real
"$build/tests/integration/test_sys_lsm" || rc=1
if [[ -n $bench ]]; then
	# the LSM backend's per-call cost, measured where it can load (the host refuses it)
	"$build/tests/bench/bench_sys" lsm -r 21 -o "$bench-lsm.md" || rc=1
	"$build/tests/bench/bench_sys" cgroup -n 50000 -o "$bench-cgroup-vm.md" || rc=1
fi
exit $rc
