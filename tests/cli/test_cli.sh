#!/usr/bin/env bash
# The command line as a user meets it: exit codes, stdout vs stderr, plan has no side effect.
set -uo pipefail

fl=${FL_BIN:?FL_BIN must point at the faultline binary}
src=${FL_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

check() { # name, expected exit, command...
	local name=$1 want=$2
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	local got=$?
	if [ "$got" -eq "$want" ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL $name: exit $got, wanted $want"
		sed 's/^/  stdout: /' "$tmp/out" | head -5
		sed 's/^/  stderr: /' "$tmp/err" | head -5
	fi
}
expect() { # name, file, pattern
	if grep -qE -- "$3" "$2"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL $1: '$3' not in $2:"
		sed 's/^/  /' "$2" | head -10
	fi
}

check "no args is a usage error" 2 "$fl"
check "help" 0 "$fl" --help
expect "help lists commands" "$tmp/out" "validate SCENARIO"
check "unknown command" 2 "$fl" frobnicate
expect "unknown command says so on stderr" "$tmp/err" "unknown command 'frobnicate'"
check "version" 0 "$fl" version
expect "version names the libraries" "$tmp/out" "^faultline [0-9.]+ \(libnl .*libbpf .*libyaml"
for cmd in run validate plan recover list version; do
	check "$cmd --help" 0 "$fl" "$cmd" --help
	expect "$cmd --help is usage" "$tmp/out" "usage: faultline $cmd"
done
check "option a command does not take" 2 "$fl" list --json x.json
expect "says which option" "$tmp/err" "--json does not apply"
check "unknown option" 2 "$fl" validate --bogus "$src/scenarios/fd-exhaustion.yaml"

check "validate the library" 0 "$fl" validate "$src"/scenarios/*.yaml
expect "ok lines on stdout" "$tmp/out" "fd-exhaustion.yaml: ok"
check "validate needs a file" 2 "$fl" validate
check "validate a missing file" 2 "$fl" validate "$tmp/nope.yaml"
expect "missing file error" "$tmp/err" "nope.yaml:1:1: error: cannot open"

# five mistakes (one of them twice-reported by design: a misspelt key is also a missing one)
check "five mistakes" 2 "$fl" validate "$src/tests/scenarios/broken/five-mistakes.yaml"
expect "error count" "$tmp/err" "five-mistakes.yaml: 6 errors; nothing was run"
expect "line:col of the misspelt key" "$tmp/err" "five-mistakes.yaml:7:3: error: unknown key 'conections' in load"
[ -s "$tmp/out" ] && { failed=$((failed + 1)); echo "FAIL invalid file printed to stdout"; } || passed=$((passed + 1))
check "mixed valid and invalid" 2 "$fl" validate "$src/scenarios/fd-exhaustion.yaml" "$src/tests/scenarios/broken/anchors.yaml"
expect "valid one still reported ok" "$tmp/out" "fd-exhaustion.yaml: ok"

check "--set after the file" 0 "$fl" validate "$src/scenarios/fd-exhaustion.yaml" --set load.rate=50/s
check "--set error" 2 "$fl" validate "$src/scenarios/fd-exhaustion.yaml" --set load.rate=fast
expect "--set error position" "$tmp/err" "^--set:1:11: error: load.rate"

# plan: a readable timeline and no side effect at all
check "plan" 0 "$fl" plan "$src/scenarios/fd-exhaustion.yaml" --set phases.baseline=3s
expect "plan timeline" "$tmp/out" "t=3s +apply  fd-squeeze \(fd.exhaust\) for 10s"
expect "plan revert" "$tmp/out" "t=13s +revert fd-squeeze"
expect "plan preflight" "$tmp/out" "prlimit\(2\) may read"
expect "plan says nothing happened" "$tmp/out" "nothing was started, touched or injected"
check "plan invalid" 2 "$fl" plan "$src/tests/scenarios/broken/five-mistakes.yaml"
check "plan takes one file" 2 "$fl" plan "$src/scenarios/fd-exhaustion.yaml" "$src/scenarios/stop-the-world.yaml"
# strace proves plan makes no write, no signal, no process, no mkdir, no netlink or bpf call, no
# limit set — for a launched target, and for a running one it finds and checks (read-only probes:
# kill(pid, 0) and prlimit without a new limit are allowed)
plan_is_pure() { # NAME SCENARIO
	strace -f -qq -e trace=process,write,openat,mkdir,unlink,kill,bpf,socket,prlimit64,setrlimit \
		-o "$tmp/trace" "$fl" plan "$2" >/dev/null 2>&1
	# syscall names where strace puts them (after the pid), not inside paths like /tmp/ci-clone
	if grep -E '^[0-9]+ +((clone3?|v?fork|execve|tgkill|bpf|socket|mkdir|mkdirat|unlink|unlinkat)\(|kill\([^,]+, SIG|prlimit64\([0-9]+, RLIMIT_[A-Z]+, \{)|O_WRONLY|O_RDWR|O_CREAT' "$tmp/trace" |
		grep -vE '^[0-9]+ +execve\("[^"]*/faultline", |write\(1,' >"$tmp/side"; then
		failed=$((failed + 1))
		echo "FAIL plan had side effects ($1):"
		head -5 "$tmp/side"
	else
		passed=$((passed + 1))
	fi
}
if command -v strace >/dev/null 2>&1; then
	plan_is_pure "launched target" "$src/scenarios/fd-exhaustion.yaml"
	sleep 60 &
	sleeper=$!
	cat >"$tmp/running.yaml" <<EOF
version: 1
name: running
target: {url: "http://127.0.0.1:9/", pid: $sleeper}
load: {rate: 10/s}
slo: {good: {latency: 100ms}, survival_ratio: 50%}
faults:
  - {name: freeze, type: process.pause, duration: 1s, scope: process}
  - {name: squeeze, type: fd.exhaust, duration: 1s, limit: 10}
EOF
	plan_is_pure "running target" "$tmp/running.yaml"
	check "plan of a running target" 0 "$fl" plan "$tmp/running.yaml"
	expect "plan names the running pid" "$tmp/out" "now: pid $sleeper \(sleep\)"
	expect "plan ran the checks" "$tmp/out" "now: passes"
	if [ "$(awk '{print $3}' "/proc/$sleeper/stat")" = S ] &&
		[ "$(prlimit --pid "$sleeper" --nofile --noheadings --output SOFT | xargs)" != 10 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL plan touched the running target"
	fi
	# network faults: check() may ask the kernel (a route, the interface, its qdiscs), read-only:
	# netlink sockets and setns are allowed, but no RTM_NEW*/RTM_DEL* message, no bpf(), no process
	cat >"$tmp/netplan.yaml" <<EOF
version: 1
name: netplan
target: {url: "http://127.0.0.1:9/", pid: $sleeper}
load: {rate: 10/s}
slo: {good: {latency: 100ms}, survival_ratio: 50%}
faults:
  - {name: lag, type: network.delay, duration: 1s, delay: 100ms, match: {dst_ip: 127.0.0.1, dst_port: 9}}
  - {name: bw, type: network.bandwidth, duration: 1s, rate: 1Mbit/s, match: {dst_ip: 127.0.0.1, dst_port: 10}}
  - {name: cut, type: network.partition, duration: 1s, match: {dst_ip: 127.0.0.1, dst_port: 9}}
EOF
	strace -f -qq -e trace=process,write,openat,mkdir,unlink,kill,bpf,socket,sendto,sendmsg,prlimit64 \
		-o "$tmp/trace" "$fl" plan "$tmp/netplan.yaml" >/dev/null 2>&1
	if grep -E '^[0-9]+ +((clone3?|v?fork|tgkill|bpf|mkdir|unlink)\(|socket\(AF_(INET|INET6|UNIX))|RTM_NEW|RTM_DEL|O_WRONLY|O_RDWR|O_CREAT' "$tmp/trace" |
		grep -vE 'write\(1,' >"$tmp/side" || ! grep -q 'RTM_GETQDISC' "$tmp/trace"; then
		failed=$((failed + 1))
		echo "FAIL plan of network faults had side effects (or never looked at the qdiscs):"
		head -5 "$tmp/side"
	else
		passed=$((passed + 1))
	fi
	kill "$sleeper"
	wait "$sleeper" 2>/dev/null
fi

check "list" 0 "$fl" list
expect "list shows each injector and its host status" "$tmp/out" "^fd.exhaust"
expect "list availability" "$tmp/out" "this host: (available|UNAVAILABLE)"
check "list --markdown" 0 "$fl" list --markdown
if cmp -s "$tmp/out" "$src/docs/reference.md"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL docs/reference.md is stale"; fi

# cmake --install ships the boot-time recover unit, pointing at the installed binary
if [ -n "${FL_BINARY_DIR:-}" ] && DESTDIR="$tmp/inst" cmake --install "$FL_BINARY_DIR" >/dev/null 2>&1; then
	unit=$(find "$tmp/inst" -name faultline-recover.service | head -1)
	exe=$(sed -n 's/^ExecStart=\([^ ]*\) recover .*/\1/p' "$unit" 2>/dev/null)
	if [ -n "$unit" ] && [ -n "$exe" ] && [ -x "$tmp/inst$exe" ] &&
		"$tmp/inst$exe" recover --state-dir "$tmp/empty-state" >"$tmp/out" 2>&1 && grep -q "0 journal" "$tmp/out"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL install: unit '$unit' ExecStart '$exe'"
	fi
else
	failed=$((failed + 1))
	echo "FAIL cmake --install"
fi

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
