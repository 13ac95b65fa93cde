# fd-exhaustion (GO-INC-3): the shipped phases are already short (5 s baseline, 10 s fault, 10 s recovery).
sets=(--set phases.recovery=6s)
check() {
	local limit
	limit=$(python3 -c "import json; r=json.load(open('$tmp/$1.json')); print(r['faults'][0]['configured']['limit'])")
	[ "$limit" = 16 ] || { echo "configured limit $limit, expected 16"; return; }
	if [ "$1" = naive ]; then
		grep -qi "too many open files" "$tmp/naive.d/target.log" &&
			echo "ok: 'accept4: too many open files' in naive's log" ||
			echo "naive's log never says 'too many open files'"
	else
		echo "ok"
	fi
}
