#!/usr/bin/env bash
# Snapshot of the host objects faultline may touch; `residue.sh snapshot F` then `residue.sh compare F` fails on any difference (`show` prints it).
set -u # no errexit: an empty grep is the normal, clean answer here

state() {
	echo "## qdiscs"; tc qdisc show 2>/dev/null | sort
	echo "## bpf programs named fl*"; (bpftool prog show 2>/dev/null || true) | grep -Eo 'name (fl|faultline)[A-Za-z0-9_]*' | sort
	echo "## cgroups named faultline"; find /sys/fs/cgroup -maxdepth 4 -type d -iname '*faultline*' 2>/dev/null | sort
	echo "## netns"; ip netns list 2>/dev/null | sort
	echo "## iptables faultline rules"; (iptables-save 2>/dev/null || true) | grep -Ei 'faultline|NFQUEUE' | sort
	echo "## bpffs pins"; find /sys/fs/bpf -maxdepth 3 -iname '*faultline*' 2>/dev/null | sort
	# zombies are left out: they hold nothing but a pid, and reaping an orphan is init's job (pid 1
	# on these machines reaps every second or two, so a SIGKILLed controller's guardian lingers so long)
	echo "## processes"; ps -eo stat=,args= | awk '$1 !~ /^Z/ { $1 = ""; print }' |
		grep -E 'faultline|tests/targets/(naive|hardened|downstream)' | grep -v -e residue.sh -e 'grep -E' | sort
	echo "## journals"; ls /run/faultline 2>/dev/null | sort
}

case "${1:-}" in
show) state ;;
snapshot) state >"$2" ;;
compare)
	now=$(mktemp)
	state >"$now"
	if ! diff -u "$2" "$now"; then
		echo "residue: the host is not as it was before the tests (diff above: - before, + after)" >&2
		rm -f "$now"
		exit 1
	fi
	rm -f "$now"
	echo "residue: host unchanged (qdiscs, BPF programs, cgroups, netns, iptables, pins, processes, journals)"
	;;
*) echo "usage: $0 show | snapshot FILE | compare FILE" >&2; exit 2 ;;
esac
