# Shared by the end-to-end tests: a private temp dir and state dir, processes to reap, pass/fail counts.
# Source it after setting `fl` (the faultline binary) and `name` (the suite, for the temp dir).

tmp=$(mktemp -d "/tmp/fl-$name-XXXXXX")
state=$tmp/state
pids=()
passed=0 failed=0

# Every exit path: resume and kill what the test started, undo any fault a failed test left, remove files.
cleanup() {
	for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	"$fl" recover --state-dir "$state" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -25; }
# A free loopback port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
limit_of() { prlimit --pid "$1" --nofile --noheadings --output SOFT,HARD | xargs; }
state_of() { awk '{print $3}' "/proc/$1/stat"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# The closing line, and the exit status.
finish() {
	echo "$name: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
