# Sourced by scripts that vm.sh runs inside the test VM: helpers for the stock Debian kernel there.
# (No set -euo pipefail here: a sourced snippet must not change the caller's shell options.)

# vm_modprobe NAME... - load kernel modules of the VM's kernel. The VM's root is the host's, whose
# /lib/modules does not match this kernel, so point modprobe at the unpacked package vm.sh shares.
vm_modprobe() {
	if [[ -z ${FL_VM_MODULES:-} ]]; then
		echo "vm_modprobe: FL_VM_MODULES is not set: not running inside vm.sh run" >&2
		return 1
	fi
	local m
	for m in "$@"; do
		/sbin/modprobe -d "$FL_VM_MODULES" "$m" || {
			echo "vm_modprobe: cannot load $m" >&2
			return 1
		}
	done
}

# vm_require - stop a script early, with a clear message, when it was started outside the VM.
vm_require() {
	if [[ ${FL_VM:-} != 1 ]]; then
		echo "this script must run inside the test VM: tests/vm/vm.sh run CACHE_DIR WORK_DIR $0" >&2
		exit 2
	fi
}
