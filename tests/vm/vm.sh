#!/usr/bin/env bash
# QEMU test harness: boot Debian's stock kernel (netem, prio, u32, BPF LSM...) and run a test script inside it.
#
#   vm.sh prepare CACHE_DIR                     fetch + unpack the kernel, build the initramfs (idempotent)
#   vm.sh run CACHE_DIR WORK_DIR SCRIPT [ARGS]  boot, run "bash SCRIPT ARGS" as root in WORK_DIR, exit with its status
#
# See tests/vm/README.md. The host kernel here has no loadable modules and refuses BPF LSM, so
# tests of those features boot a real Debian kernel under TCG (no /dev/kvm) instead.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INIT_SRC=$HERE/initramfs-init.sh
# Only the leaves: their dependencies (virtio_ring, netfs, fscache, ...) and load order come from modules.dep,
# so a new kernel ABI with a different module split still boots.
INITRAMFS_MODULES=(virtio_pci 9pnet_virtio 9p)
# Where the unpacked kernel package appears inside the VM (see initramfs-init.sh).
VM_KMOD=/run/faultline-vm/kmod
# Harness failures (as opposed to the script's own status) exit with these.
EXIT_HARNESS=125
EXIT_TIMEOUT=124

say() { printf 'vm.sh: %s\n' "$*"; }
log() { printf 'vm.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit "$EXIT_HARNESS"
}

usage() {
	sed -n '2,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# Missing tools are reported as the Debian packages to install, all at once, not one per attempt.
# run needs them too: kmod's modprobe inside the VM, busybox to check the initramfs is current.
check_packages() {
	local missing=()
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	# The initramfs has no libc, so the busybox inside must be the static build.
	[[ $(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null) == installed && -x /bin/busybox ]] ||
		missing+=(busybox-static)
	command -v cpio >/dev/null || missing+=(cpio)
	command -v modprobe >/dev/null && command -v depmod >/dev/null || missing+=(kmod)
	if ((${#missing[@]})); then
		die "missing Debian packages: ${missing[*]} (install with: apt-get install --no-install-recommends ${missing[*]})"
	fi
}

cache_dir_of() { # CACHE_DIR -> absolute path (created)
	mkdir -p -- "$1"
	(cd -- "$1" && pwd -P)
}

# The versioned kernel package behind linux-image-amd64, e.g. linux-image-6.1.0-56-amd64.
kernel_package() {
	if [[ -n ${FL_VM_KERNEL_PKG:-} ]]; then
		printf '%s\n' "$FL_VM_KERNEL_PKG"
		return
	fi
	# Empty output (not an error) when apt has no package lists: the caller explains.
	{ LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null || true; } |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}

modules_for_initramfs() { # KROOT VERSION -> module paths in load order, deduplicated
	modprobe -d "$1" -S "$2" --show-depends -a "${INITRAMFS_MODULES[@]}" |
		awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

# Everything the initramfs is made of; a change in any of them means rebuild.
initramfs_fingerprint() { # KROOT VERSION
	{
		printf 'version %s\n' "$2"
		sha256sum <"$INIT_SRC"
		sha256sum </bin/busybox
		modules_for_initramfs "$1" "$2" | sed "s|^$1/||"
	} | sha256sum | cut -d' ' -f1
}

prepare() { # CACHE_DIR
	local cache pkg ver kroot stage deb fp mods m a old
	check_packages
	cache=$(cache_dir_of "$1")
	# Two prepares on the same cache (parallel CI jobs) would otherwise race on the same files.
	exec 9>"$cache/.lock"
	flock 9

	pkg=$(kernel_package)
	if [[ -z $pkg ]]; then
		# Offline with an already prepared cache is fine; a fresh machine needs the package lists.
		if [[ -s $cache/current && -f $cache/kernel-$(<"$cache/current")/.fl-complete ]]; then
			pkg=linux-image-$(<"$cache/current")
			say "cannot resolve linux-image-amd64 (no apt lists?); keeping cached $pkg"
		else
			die "cannot find which linux-image-6.1.0-*-amd64 linux-image-amd64 depends on: run 'apt-get update' first"
		fi
	fi
	ver=${pkg#linux-image-}
	kroot=$cache/kernel-$ver

	if [[ -f $kroot/.fl-complete ]]; then
		say "kernel $ver already unpacked in $kroot"
	else
		rm -rf -- "$kroot" "$kroot.tmp" "$cache/download"
		mkdir -p "$cache/download"
		say "downloading $pkg into $cache/download"
		# As root apt drops to the _apt user, which cannot write into an arbitrary directory.
		local apt_opts=()
		[[ $EUID -eq 0 ]] && apt_opts=(-o APT::Sandbox::User=root)
		(cd "$cache/download" && apt-get "${apt_opts[@]}" download "$pkg") ||
			die "apt-get download $pkg failed"
		deb=$(find "$cache/download" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
		[[ -n $deb ]] || die "apt-get download left no ${pkg}_*.deb in $cache/download"
		say "unpacking $(basename "$deb")"
		dpkg-deb -x "$deb" "$kroot.tmp"
		[[ -f $kroot.tmp/boot/vmlinuz-$ver && -d $kroot.tmp/lib/modules/$ver ]] ||
			die "$deb has no boot/vmlinuz-$ver or lib/modules/$ver"
		# The package ships no modules.dep (the postinst makes it); modprobe -d needs it.
		say "depmod $ver"
		depmod -b "$kroot.tmp" "$ver"
		touch "$kroot.tmp/.fl-complete"
		mv -- "$kroot.tmp" "$kroot"
		rm -rf -- "$cache/download"
	fi
	printf '%s\n' "$ver" >"$cache/current.tmp"
	mv -- "$cache/current.tmp" "$cache/current"

	fp=$(initramfs_fingerprint "$kroot" "$ver") || die "cannot resolve ${INITRAMFS_MODULES[*]} in $kroot (delete it and prepare again)"
	if [[ -f $cache/initramfs-$ver.cpio.gz && $(cat "$cache/initramfs-$ver.fingerprint" 2>/dev/null) == "$fp" ]]; then
		say "initramfs-$ver.cpio.gz is up to date"
	else
		stage=$(mktemp -d "$cache/initramfs.XXXXXX")
		mkdir -p "$stage"/{bin,sbin,dev,proc,sys,ctl,newroot,lib/fl-modules}
		cp /bin/busybox "$stage/bin/busybox"
		for a in $(/bin/busybox --list); do
			[[ $a == busybox ]] || ln -s busybox "$stage/bin/$a"
		done
		install -m 0755 "$INIT_SRC" "$stage/init"
		mapfile -t mods < <(modules_for_initramfs "$kroot" "$ver")
		((${#mods[@]})) || die "modprobe found none of ${INITRAMFS_MODULES[*]} in $kroot"
		for m in "${mods[@]}"; do
			cp -- "$m" "$stage/lib/fl-modules/"
			basename -- "$m" >>"$stage/lib/fl-modules/order"
		done
		(cd "$stage" && find . -mindepth 1 -print0 | cpio --null -o -H newc -R 0:0 --quiet) |
			gzip -1 >"$cache/initramfs-$ver.cpio.gz.tmp"
		rm -rf -- "$stage"
		mv -- "$cache/initramfs-$ver.cpio.gz.tmp" "$cache/initramfs-$ver.cpio.gz"
		printf '%s\n' "$fp" >"$cache/initramfs-$ver.fingerprint"
		say "built initramfs-$ver.cpio.gz (busybox, ${mods[*]##*/})"
	fi

	# A Debian kernel ABI bump leaves the old 400 MB tree behind: keep only the current one.
	for old in "$cache"/kernel-* "$cache"/initramfs-*.cpio.gz; do
		[[ -e $old ]] || continue
		case $old in
		"$kroot" | "$cache/initramfs-$ver.cpio.gz") ;;
		*)
			say "removing stale $old"
			rm -rf -- "$old" "${old%.cpio.gz}.fingerprint"
			;;
		esac
	done
	say "ready: kernel $ver in $cache"
}

# The LSM list Debian's kernel was built with, with bpf added if it is missing, so BPF LSM
# programs can attach whatever Debian's default order becomes.
lsm_list() { # KROOT VERSION
	local lsm
	lsm=$(sed -n 's/^CONFIG_LSM="\(.*\)"$/\1/p' "$1/boot/config-$2")
	[[ -n $lsm ]] || lsm=lockdown,capability,landlock,yama,apparmor
	[[ ,$lsm, == *,bpf,* ]] || lsm+=,bpf
	printf '%s\n' "$lsm"
}

qemu_escape() { printf '%s' "${1//,/,,}"; } # commas separate qemu sub-options

sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # for the busybox sh that sources vm.conf

qpid=
ctl=
run_cleanup() {
	# Whatever got us here (normal end, error, signal), no qemu may outlive vm.sh.
	if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	if [[ -n $ctl && -s $ctl/qemu.pid ]]; then
		local p
		p=$(<"$ctl/qemu.pid")
		# Only if that pid is still our qemu (its command line names our ctl dir), not a reused pid.
		if [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == *"$ctl"* ]]; then
			kill -KILL "$p" 2>/dev/null || true
		fi
	fi
	if [[ -n $ctl ]]; then
		if [[ -n ${FL_VM_KEEP:-} ]]; then
			log "kept $ctl (FL_VM_KEEP)"
		else
			rm -rf -- "$ctl"
		fi
	fi
}

show_console() {
	if [[ -s $ctl/console.log ]]; then
		log "last lines of the VM console:"
		tail -n 40 "$ctl/console.log" | sed 's/^/  | /' >&2
	else
		log "the VM console printed nothing"
	fi
}

run() { # CACHE_DIR WORK_DIR SCRIPT [ARGS...]
	local cache work script ver kroot initrd fp timeout cmdline qrc status t0 name v
	(($# >= 3)) || usage
	check_packages
	[[ -d $1 ]] || die "no cache dir $1: run 'vm.sh prepare $1' first"
	cache=$(cache_dir_of "$1")
	[[ -d $2 ]] || die "work dir $2 does not exist"
	work=$(cd -- "$2" && pwd -P)
	[[ $work != / ]] || die "the work dir cannot be /"
	script=$3
	shift 3
	# A relative SCRIPT is taken relative to the work dir, since that is the cwd inside.
	[[ $script == /* ]] || script=$work/$script
	[[ -f $script ]] || die "no script $script"
	script=$(realpath -- "$script")
	case $script in
	"$work"/*) ;;
	/tmp/* | /run/* | /dev/* | /proc/* | /sys/*)
		die "$script would be hidden inside the VM (fresh /tmp, /run, ...): put it under $work" ;;
	esac

	[[ -s $cache/current ]] || die "$cache is not prepared: run 'vm.sh prepare $cache'"
	ver=$(<"$cache/current")
	kroot=$cache/kernel-$ver
	initrd=$cache/initramfs-$ver.cpio.gz
	[[ -f $kroot/.fl-complete && -f $initrd ]] || die "$cache is incomplete: run 'vm.sh prepare $cache'"
	fp=$(initramfs_fingerprint "$kroot" "$ver") || die "$kroot is damaged: delete it and run 'vm.sh prepare $cache'"
	[[ $(cat "$cache/initramfs-$ver.fingerprint" 2>/dev/null) == "$fp" ]] ||
		die "$initrd is stale (initramfs-init.sh or busybox changed): run 'vm.sh prepare $cache'"

	timeout=${FL_VM_TIMEOUT:-300}
	[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "FL_VM_TIMEOUT must be a whole number of seconds, not '$timeout'"

	trap run_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	ctl=$(mktemp -d "${TMPDIR:-/tmp}/fl-vm.XXXXXX")

	printf 'WORK_DIR=%s\n' "$(sh_quote "$work")" >"$ctl/vm.conf"
	# The script gets a clean environment (a test should not depend on the host's), plus the host's
	# FL_* variables so knobs like FL_DEBUG still reach it; ours are set last so they win.
	{
		printf '# generated by vm.sh run\n'
		printf 'cd -- %q || exit 125\n' "$work"
		printf 'exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8'
		for name in $(compgen -e | grep '^FL_' || true); do
			[[ $name == FL_VM || $name == FL_VM_MODULES ]] && continue
			v=${!name}
			printf ' %q' "$name=$v"
		done
		printf ' FL_VM=1 FL_VM_MODULES=%q' "$VM_KMOD"
		printf ' bash --'
		printf ' %q' "$script" "$@"
		printf '\n'
	} >"$ctl/launch.sh"

	# mitigations=off: speculation hardening only costs time in a throwaway emulated VM
	# (about 10% on a syscall-bound loop here); quiet: the console goes to a log file anyway.
	cmdline="console=ttyS0 quiet panic=-1 mitigations=off lsm=$(lsm_list "$kroot" "$ver")"

	log "booting $ver (timeout ${timeout}s): bash$(printf ' %q' "$script" "$@")"
	t0=$SECONDS
	# setpriv --pdeathsig: if vm.sh is SIGKILLed (no trap runs), timeout dies with it and qemu with timeout.
	setpriv --pdeathsig KILL -- timeout --kill-after=10 "$timeout" \
		setpriv --pdeathsig KILL -- \
		qemu-system-x86_64 -accel tcg -smp 2 -m 1G \
		-nodefaults -no-user-config -display none -no-reboot \
		-name fl-vm -pidfile "$ctl/qemu.pid" \
		-kernel "$kroot/boot/vmlinuz-$ver" -initrd "$initrd" -append "$cmdline" \
		-serial "file:$ctl/console.log" -serial stdio \
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$(qemu_escape "$kroot"),mount_tag=kmod,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$(qemu_escape "$work"),mount_tag=work,security_model=none,multidevs=remap" \
		-virtfs "local,path=$(qemu_escape "$ctl"),mount_tag=flctl,security_model=none" \
		</dev/null &
	qpid=$!
	qrc=0
	wait "$qpid" || qrc=$?
	qpid=

	# timeout(1) says 124, or 137 when qemu needed the KILL; the clock tells either way.
	if ((qrc != 0 && SECONDS - t0 >= timeout)); then
		show_console
		log "error: timed out after ${timeout}s (FL_VM_TIMEOUT); qemu was killed"
		exit "$EXIT_TIMEOUT"
	fi
	if [[ ! -s $ctl/status ]]; then
		show_console
		[[ -s $ctl/init-error ]] && log "VM init said: $(<"$ctl/init-error")"
		log "error: the VM left no exit status (qemu exited with $qrc after $((SECONDS - t0))s): the script did not run to the end"
		exit "$EXIT_HARNESS"
	fi
	status=$(<"$ctl/status")
	((qrc == 0)) || log "warning: qemu exited with $qrc after the script finished"
	log "script exited with $status after $((SECONDS - t0))s in the VM"
	exit "$status"
}

case ${1:-} in
prepare)
	(($# == 2)) || usage
	prepare "$2"
	;;
run)
	shift
	run "$@"
	;;
*) usage ;;
esac
