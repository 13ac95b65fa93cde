#!/usr/bin/env bash
# Runs bench_net inside the QEMU test VM (Debian's stock kernel, which has sch_netem), so netem's apply/revert latency and delay accuracy get measured too.
# Usage, from the repository root on the host:
#   tests/vm/vm.sh run CACHE_DIR . tests/bench/run_bench_net_vm.sh BUILD_DIR [bench_net options...]
# e.g. FL_VM_TIMEOUT=420 tests/vm/vm.sh run build-bench/vm-cache . tests/bench/run_bench_net_vm.sh build-bench -a netem -o build-bench/bench_net_vm.md
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../vm/inside.sh"
vm_require

build=${1:?usage: run_bench_net_vm.sh BUILD_DIR [bench_net options...]}
shift
bin=$build/tests/bench/bench_net
[[ -x $bin ]] || {
	echo "run_bench_net_vm: $bin is not built (cmake --build $build --target bench_net)" >&2
	exit 2
}
# veth is never requested by the kernel itself; the qdiscs and cls_bpf are when tc asks, but be explicit
vm_modprobe veth sch_netem sch_htb sch_tbf cls_bpf || exit 3
# the nfqueue backend's pieces: optional here (netem is what the VM is for), so a missing one only skips its rows
for m in nfnetlink_queue xt_NFQUEUE xt_comment nft_compat; do
	/sbin/modprobe -d "$FL_VM_MODULES" "$m" 2>/dev/null || echo "run_bench_net_vm: module $m not loaded: nfqueue rows may skip" >&2
done
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
echo "run_bench_net_vm: kernel $(uname -r), $(nproc) vCPUs (QEMU TCG); /tmp is $(stat -f -c %T /tmp)"
exec "$bin" "$@"
