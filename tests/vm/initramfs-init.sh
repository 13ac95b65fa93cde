#!/bin/sh
# PID 1 of the test VM (vm.sh packs it into the initramfs as /init): mount the host, run the test in a chroot, power off.
# This runs under busybox ash, not bash: keep it POSIX sh. The host reads our outcome from files in the
# "flctl" 9p share (status or init-error); everything we print goes to ttyS0, which vm.sh logs to a file.
set -eu

R=/newroot
CTL=/ctl
NINEP=trans=virtio,version=9p2000.L,msize=262144

shutdown_vm() {
	sync
	poweroff -f
	# poweroff -f does not return; if it somehow does, PID 1 must not exit (that panics and hides the cause).
	sleep 5
	echo o >/proc/sysrq-trigger
}

fail() {
	echo "fl-vm init: $*"
	# The host treats a missing status file as failure and prints init-error, so say why when we can.
	if grep -q " $CTL 9p " /proc/mounts 2>/dev/null; then
		echo "$*" >>"$CTL/init-error"
	fi
	shutdown_vm
}

# Any unexpected failure under set -e lands here rather than killing PID 1 (a kernel panic).
trap 'fail "init aborted: a setup command failed (see console log above)"' EXIT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The initramfs has no /dev/console node (cpio is built without mknod), so attach our stdio now.
exec </dev/null >/dev/console 2>&1

# virtio and 9p are modules in Debian's kernel: load them in the dependency order vm.sh computed.
while read -r mod; do
	insmod "/lib/fl-modules/$mod" || fail "insmod $mod failed"
done </lib/fl-modules/order

echo "fl-vm init: virtio and 9p modules loaded"

mount -t 9p -o "$NINEP" flctl "$CTL" || fail "cannot mount the flctl share"
# vm.conf is written by vm.sh run: WORK_DIR (shell-quoted).
# shellcheck disable=SC1091
. "$CTL/vm.conf"

# The host root, read-only: host-built binaries and their libraries run unchanged inside.
mount -t 9p -o "$NINEP,ro,cache=loose" hostroot "$R" || fail "cannot mount the host root"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t devtmpfs devtmpfs "$R/dev"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts devpts "$R/dev/pts"
mount -t tmpfs tmpfs "$R/dev/shm"
# The root is read-only, so everything that must be writable gets a tmpfs.
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount -t securityfs securityfs "$R/sys/kernel/security"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t bpf bpf "$R/sys/fs/bpf"
# Nice to have for BPF debugging, not worth failing the boot over.
mount -t tracefs tracefs "$R/sys/kernel/tracing" || echo "fl-vm init: warning: no tracefs"
mount -t debugfs debugfs "$R/sys/kernel/debug" || echo "fl-vm init: warning: no debugfs"
# Delegate every controller from the root so tests can make child cgroups with memory.max, pids.max, ...
read -r controllers <"$R/sys/fs/cgroup/cgroup.controllers" || true
for c in $controllers; do
	echo "+$c" >"$R/sys/fs/cgroup/cgroup.subtree_control" || echo "fl-vm init: warning: cannot enable cgroup controller $c"
done

# The unpacked kernel package, so modprobe -d finds modules.dep for the running kernel.
mkdir -p "$R/run/faultline-vm/kmod"
mount -t 9p -o "$NINEP,ro,cache=loose" kmod "$R/run/faultline-vm/kmod" || fail "cannot mount the kmod share"

# The work dir at its host path. The mount point exists in the host root unless it lives under
# /tmp or /run, which are fresh tmpfs here; then create it. cache=mmap allows shared writable mmap.
mkdir -p "$R$WORK_DIR" 2>/dev/null || true
mount -t 9p -o "$NINEP,cache=mmap" work "$R$WORK_DIR" || fail "cannot mount the work dir at $WORK_DIR"

cp "$CTL/launch.sh" "$R/run/faultline-vm/launch.sh"

# Kernel-initiated module loads (e.g. "tc qdisc add ... netem" asks for sch_netem) run this helper in
# the initramfs root, not the chroot: forward them to the host's kmod with the unpacked modules.
cat >/bin/fl-modprobe <<'EOF'
#!/bin/sh
exec chroot /newroot /sbin/modprobe -d /run/faultline-vm/kmod "$@"
EOF
chmod 0755 /bin/fl-modprobe
echo /bin/fl-modprobe >/proc/sys/kernel/modprobe

ip link set lo up
hostname fl-vm

# ttyS1 is wired to vm.sh's stdout: raw so bytes pass unchanged (no \r added), no echo of host input.
stty -F /dev/ttyS1 raw -echo
exec 3>/dev/ttyS1

# Progress marks in the console log tell a hung test apart from a hung boot when vm.sh times out.
echo "fl-vm init: mounts done, running the test script"
set +e
chroot "$R" /bin/bash /run/faultline-vm/launch.sh </dev/null >&3 2>&3
rc=$?
set -e

echo "$rc" >"$CTL/status.tmp"
mv "$CTL/status.tmp" "$CTL/status"
echo "fl-vm init: test script exited with $rc, powering off"

# Stop anything the test left running so that the close below is the last one on ttyS1: the last
# close waits until the UART has sent everything, so no output is lost to the power-off.
kill -9 -1 2>/dev/null || true
sleep 0.1
exec 3>&-

trap - EXIT
shutdown_vm
