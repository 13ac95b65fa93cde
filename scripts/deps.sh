#!/usr/bin/env bash
# Installs every Debian package faultline's build, tests and demo need. Idempotent; quick when all are present.
set -euo pipefail

packages=(
	# build
	cmake ninja-build pkg-config gcc clang llvm
	libnl-3-dev libnl-route-3-dev libbpf-dev libyaml-dev libjson-c-dev libelf-dev zlib1g-dev
	bpftool
	# tests
	libcmocka-dev iproute2 iptables procps python3 python3-yaml strace curl
	# the install test: systemd-analyze verify of the units, groff lint and man -w of the man page
	systemd groff-base man-db
	# the QEMU harness (tests/vm): Debian's stock kernel for netem and BPF LSM, which this host lacks
	qemu-system-x86 busybox-static cpio kmod iputils-ping
	# demo targets (Go standard library only) and the load-generator benchmark peers
	golang-go nginx-light wrk
)

missing=()
for p in "${packages[@]}"; do
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}; run as root (sudo $0) to install them" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx-light's package starts the system nginx; faultline's benchmark runs its own private instance.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
	systemctl stop nginx || true
fi
