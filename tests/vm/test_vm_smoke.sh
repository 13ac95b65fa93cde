#!/usr/bin/env bash
# Host-side smoke test of the QEMU harness: prepare, netem + BPF LSM inside the VM, and the harness's own promises.
# Usage: tests/vm/test_vm_smoke.sh [CACHE_DIR]   (default: build/vm-cache in the repo)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${1:-$repo/build/vm-cache}
vm=$here/vm.sh

passed=0
failed=0
ok() {
	echo "ok - $*"
	passed=$((passed + 1))
}
bad() {
	echo "FAIL - $*"
	failed=$((failed + 1))
}
now() { printf '%s\n' "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# The VM runs the host's userland, so the tools the inside script uses must be on the host.
missing=()
[[ -x /usr/sbin/tc && -x /usr/sbin/ip ]] || missing+=(iproute2)
command -v ping >/dev/null || missing+=(iputils-ping)
if ((${#missing[@]})); then
	echo "FAIL - missing Debian packages for the smoke test: ${missing[*]}"
	exit 1
fi

# Our own TMPDIR: vm.sh puts its per-run dir there and passes it to qemu, so any process whose
# command line mentions it is one of ours; other sessions' VMs on this machine do not count.
tmp=$(mktemp -d)
mark=$repo/build/.vm-smoke-mark.$$
trap 'rm -rf -- "$tmp" "$mark"' EXIT
export TMPDIR=$tmp

leftovers() {
	local p c
	for p in /proc/[0-9]*; do
		c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		[[ $c == *"$tmp/fl-vm."* ]] && printf '%s: %s\n' "${p#/proc/}" "${c:0:80}"
	done
	return 0
}
check_no_qemu() { # WHEN
	local l
	l=$(leftovers)
	if [[ -z $l ]]; then
		ok "no qemu left behind after $1"
	else
		bad "processes left behind after $1: $l"
	fi
}

t0=$(now)
if bash "$vm" prepare "$cache"; then
	ok "prepare ($(secs "$t0" "$(now)") s)"
else
	bad "prepare"
	echo "0 passed, 1 failed"
	exit 1
fi

# 1. The real thing: netem on a veth between two netns, and BPF LSM.
t0=$(now)
rc=0
bash "$vm" run "$cache" "$repo" tests/vm/smoke_inside.sh smoke || rc=$?
if ((rc == 0)); then
	ok "netem + BPF LSM inside the VM (run $(secs "$t0" "$(now)") s)"
else
	bad "netem + BPF LSM inside the VM: exit $rc"
fi
check_no_qemu "a normal run"

# 2. Plumbing: quoted arguments, cwd, FL_* pass-through, writable work dir, exit status, no lost output.
mkdir -p "$repo/build"
rm -f -- "$mark"
rc=0
FL_TEST_WORK=$repo FL_TEST_MARK=$mark \
	bash "$vm" run "$cache" "$repo" tests/vm/smoke_inside.sh plumbing "a b" "c'\$d" >"$tmp/out" 2>"$tmp/err" || rc=$?
grep -E '^(ok|FAIL) ' "$tmp/out" || true
if ((rc == 7)); then ok "the script's exit status 7 came out of the VM"; else bad "exit status $rc, want 7"; fi
if grep -q '^FAIL' "$tmp/out" || ! grep -q '^ok - arguments intact' "$tmp/out"; then
	bad "plumbing checks inside the VM (stderr: $(tail -n 5 "$tmp/err"))"
else
	ok "plumbing checks inside the VM"
fi
if [[ $(sed -n '/^1$/,/^last line$/p' "$tmp/out" | wc -l) == 20001 && $(tail -n 1 "$tmp/out") == "last line" ]]; then
	ok "all 20001 lines printed just before power-off reached the host"
else
	bad "output lost: $(wc -l <"$tmp/out") lines, last: $(tail -n 1 "$tmp/out")"
fi
if grep -q '^to stderr$' "$tmp/out"; then ok "the script's stderr reaches stdout"; else bad "stderr missing"; fi
if [[ $(cat "$mark" 2>/dev/null) == "written in the VM" ]]; then ok "the work dir is writable from the VM"; else bad "no mark file from the VM"; fi
check_no_qemu "a failing script"

# 3. A hung script: the time limit kills qemu and says so.
t0=$(now)
rc=0
FL_VM_TIMEOUT=10 bash "$vm" run "$cache" "$repo" tests/vm/smoke_inside.sh hang >"$tmp/out" 2>"$tmp/err" || rc=$?
if ((rc == 124)) && grep -q 'timed out after 10s' "$tmp/err"; then
	ok "FL_VM_TIMEOUT=10 stops a hung script ($(secs "$t0" "$(now)") s)"
else
	bad "hung script: exit $rc, stderr: $(tail -n 3 "$tmp/err")"
fi
check_no_qemu "a time-out"

# 4. vm.sh itself killed mid-run: by SIGTERM (its trap stops qemu) and by SIGKILL (no trap can run;
# qemu dies through its parent-death signal).
for sig in TERM KILL; do
	bash "$vm" run "$cache" "$repo" tests/vm/smoke_inside.sh hang >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	for _ in $(seq 100); do
		grep -q hanging "$tmp/out" && break
		sleep 0.2
	done
	ours=$(leftovers | cut -d: -f1)
	kill -"$sig" "$pid"
	rc=0
	wait "$pid" || rc=$?
	# The parent-death signal and qemu's exit are asynchronous: allow a moment. A zombie counts as
	# gone: it no longer runs, and reaping orphans is PID 1's job (slow on this machine).
	alive=
	for _ in $(seq 100); do
		alive=
		for p in $ours; do
			st=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) || continue
			[[ $st == Z ]] || alive+=" $p"
		done
		[[ -z $alive ]] && break
		sleep 0.1
	done
	if [[ -n $ours && -z $alive && -z $(leftovers) ]]; then
		ok "no qemu left behind after SIG$sig of vm.sh (exit $rc; it had pids ${ours//$'\n'/ })"
	else
		bad "after SIG$sig of vm.sh: had pids '${ours//$'\n'/ }', still running:$alive $(leftovers)"
	fi
done

echo "vm smoke: $passed passed, $failed failed"
((failed == 0))
