#!/bin/sh
# Writes vmlinux.h from the running kernel's BTF, or fails saying why: gen-vmlinux.sh BPFTOOL BTF OUT
set -eu
bpftool=$1 btf=$2 out=$3

if [ ! -e "$btf" ]; then
	echo "error: kernel BTF $btf is missing: this kernel was built without CONFIG_DEBUG_INFO_BTF;" \
		"faultline's BPF injectors need it" >&2
	exit 1
fi
if [ ! -r "$btf" ]; then
	echo "error: kernel BTF $btf is not readable by $(id -un)" >&2
	exit 1
fi
# Through a temporary file: a failed dump must not leave a truncated header that looks up to date.
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
if ! "$bpftool" btf dump file "$btf" format c >"$tmp"; then
	echo "error: $bpftool btf dump file $btf format c failed" >&2
	exit 1
fi
mv -f "$tmp" "$out"
