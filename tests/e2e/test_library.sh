#!/usr/bin/env bash
# The incident library's gate, both ways: scenarios/NAME.yaml validates, fails against the naive Go target (exit 1) and passes against the hardened one (exit 0), and leaves nothing behind.
# Usage: test_library.sh NAME     (tests/library/NAME.sh says how to shorten it and what else to check)
#
# The scenario file is run as shipped but for the overrides tests/library/NAME.sh gives (shorter
# phases and fault windows, never the SLO or the fault's strength), against the naive binary it
# names; the hardened run changes only the binary in target.run (--set target.run=[...]), so both
# verdicts come from the same drill.
# tests/library/NAME.sh may define:
#   sets=(--set KEY=VALUE ...)   overrides for both runs (shorter phases; never the SLO)
#   setup / teardown             what the drill needs around it (a namespace, a DNS server)
#   check LABEL                  (required) assertions on $tmp/LABEL.json and $tmp/LABEL.d: the fault's
#                                observed effect against its configuration; print "ok ..." or why not
#   more=("LABEL WANT TARGET FLAG ...")  further drills after the two: TARGET with FLAGs appended to
#                                its target.run, which must exit WANT (a variant a fix must also survive)
set -uo pipefail

lib_name=${1:?usage: test_library.sh SCENARIO-NAME}
name=library-$lib_name
. "$(dirname "$0")/lib.sh"

file=$src/scenarios/$lib_name.yaml
spec=$src/tests/library/$lib_name.sh
sets=()
more=()
setup() { :; }
teardown() { :; }
# every scenario must say how its fault's observed effect is checked: no default that passes
check() { echo "tests/library/$lib_name.sh defines no check: what did the fault do?"; }
if [ ! -f "$spec" ]; then
	bad "$lib_name: no tests/library/$lib_name.sh: every scenario in the library needs its two-way test"
	finish
	exit
fi
. "$spec"

before=$tmp/before
bash "$src/scripts/residue.sh" show >"$before"

if "$fl" validate "$file" >"$tmp/validate.out" 2>&1; then
	ok "$lib_name: validates"
else
	bad "$lib_name: does not validate" "$tmp/validate.out"
fi

# The scenario's target.run with its naive binary swapped for $targets/TARGET and FLAGs appended, as
# a flow sequence: run_for TARGET [FLAG...]
run_for() {
	python3 - "$file" "$targets" "$@" <<'EOF'
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
run = doc["target"]["run"]
hits = [i for i, a in enumerate(run) if str(a).endswith("tests/targets/naive")]
if len(hits) != 1:
    sys.exit("target.run must name build/tests/targets/naive exactly once: %r" % run)
run[hits[0]] = "%s/%s" % (sys.argv[2], sys.argv[3])
run += sys.argv[4:]
print("[" + ", ".join(json.dumps(str(a)) for a in run) + "]")
EOF
}

# drill LABEL WANT_RC [TARGET [FLAG...]]: TARGET (default LABEL) with FLAGs; files and messages say LABEL
drill() {
	local label=$1 want=$2 target=${3:-$1} run rc verdict
	shift $(($# < 3 ? $# : 3))
	if ! run=$(run_for "$target" "$@" 2>"$tmp/run_for.err"); then
		bad "$lib_name against $label: $(cat "$tmp/run_for.err")"
		return
	fi
	# relative paths in the scenario (build/...) are the repository's
	(cd "$src" && "$fl" run "$file" --state-dir "$state" --report-dir "$tmp/$label.d" \
		--json "$tmp/$label.json" --junit "$tmp/$label.xml" --set "target.run=$run" "${sets[@]}") \
		>"$tmp/$label.out" 2>&1
	rc=$?
	local ratio
	ratio=$(python3 -c "import json; r=json.load(open('$tmp/$label.json')); print('%.2f%%' % (100*r['slo']['survival_ratio']['measured']))" 2>/dev/null || echo "?")
	if [ "$rc" -ne "$want" ]; then
		bad "$lib_name against $label: exit $rc, expected $want (survival $ratio)" "$tmp/$label.out"
		return
	fi
	verdict=$(check "$label" 2>&1)
	case $verdict in
	ok*) ok "$lib_name against $label: exit $rc, survival $ratio; $verdict" ;;
	*) bad "$lib_name against $label: $verdict" "$tmp/$label.out" ;;
	esac
}

if setup >"$tmp/setup.out" 2>&1; then
	drill naive 1
	drill hardened 0
	for m in "${more[@]}"; do
		read -r -a words <<<"$m"
		drill "${words[@]}"
	done
else
	bad "$lib_name: setup failed" "$tmp/setup.out"
fi
teardown >/dev/null 2>&1

bash "$src/scripts/residue.sh" show >"$tmp/after"
if diff -u "$before" "$tmp/after" >"$tmp/residue.diff"; then
	ok "$lib_name: nothing left behind"
else
	bad "$lib_name: residue after the drills" "$tmp/residue.diff"
fi
finish
