# Shared by the end-to-end tests: a private temp dir and state dir, processes to reap, pass/fail counts.
# Source it after setting `name` (the suite, for messages and the temp dir). Every suite needs root
# and the Go demo targets; without them it says SKIP and exits 0.

fl=${FL_BIN:?FL_BIN must point at the faultline binary}
bin=${FL_BINARY_DIR:?}
src=${FL_SOURCE_DIR:?}
targets=$bin/tests/targets
if [ ! -x "$targets/naive" ] || [ ! -x "$targets/hardened" ]; then
	echo "$name: SKIP: the Go demo targets are not built (golang-go missing)"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "$name: SKIP: needs root (cgroups, prlimit on other processes)"
	exit 0
fi

tmp=$(mktemp -d "/tmp/fl-$name-XXXXXX")
state=$tmp/state
pids=()
passed=0 failed=0

# Every exit path: resume and kill what the test started, undo any fault a failed test left, remove files.
cleanup() {
	for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	"$fl" recover --state-dir "$state" >/dev/null 2>&1
	[ -n "${FL_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -25; }
# A free loopback port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# An external target (not launched by faultline: it survives every ending) of KIND (naive|hardened),
# with unusual limits 3000:5000 so "restored" is exact: sets ext (pid), ext_port, ext_url.
start_ext() {
	ext_port=$(port)
	# hardened's standby would take over when cleanup SIGKILLs it, and outlive the test
	local extra=()
	[ "$1" = hardened ] && extra=(-standby=false)
	"$targets/$1" -listen "127.0.0.1:$ext_port" -downstream-listen "127.0.0.1:$(port)" "${extra[@]}" >"$tmp/ext-$1.log" 2>&1 &
	ext=$!
	pids+=("$ext")
	ext_url="http://127.0.0.1:$ext_port/api/report"
	for _ in $(seq 100); do curl -s -o /dev/null "$ext_url" && break; sleep 0.05; done
	prlimit --pid "$ext" --nofile=3000:5000
}
limit_of() { prlimit --pid "$1" --nofile --noheadings --output SOFT,HARD | xargs; }
state_of() { awk '{print $3}' "/proc/$1/stat"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# The closing line, and the exit status.
finish() {
	echo "$name: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
