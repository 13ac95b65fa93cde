# fd-exhaustion (GO-INC-3): the shipped phases are already short (5 s baseline, 10 s fault, 10 s recovery).
sets=(--set phases.recovery=6s)
# The kernel had the configured limit in force (read back with prlimit during the fault, not echoed
# from the scenario), and naive's own log shows the incident's error.
check() {
	local got
	got=$(python3 -c "import json; r=json.load(open('$tmp/$1.json')); o=r['faults'][0]['observed']; print('%s %s' % (r['faults'][0]['configured']['limit'], o.get('limit_in_force')))")
	[ "$got" = "16 16.0" ] || [ "$got" = "16 16" ] || { echo "configured / in force: $got, expected 16 / 16"; return; }
	if [ "$1" = naive ]; then
		grep -qi "too many open files" "$tmp/naive.d/target.log" &&
			echo "ok: RLIMIT_NOFILE 16 in force; 'accept4: too many open files' in naive's log" ||
			echo "naive's log never says 'too many open files'"
	else
		echo "ok: RLIMIT_NOFILE 16 in force"
	fi
}
