#!/usr/bin/env bash
# `cmake --install` puts the binary, man page, systemd units, scenarios and docs where the docs say,
# each one correct (lint, systemd-analyze verify, every option documented), and nothing elsewhere.
set -uo pipefail

fl=${FL_BIN:?FL_BIN must point at the faultline binary}
src=${FL_SOURCE_DIR:?}
bin=${FL_BINARY_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
units=$prefix/lib/systemd/system
man1=$prefix/share/man/man1/faultline.1
passed=0 failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
# name, command...: passes when the command exits 0 and prints nothing (lint and verify tools warn on stdout or stderr)
silent() {
	local name=$1
	shift
	if "$@" >"$tmp/lint" 2>&1 && [ ! -s "$tmp/lint" ]; then ok; else bad "$name:" && sed 's/^/  /' "$tmp/lint" | head -20; fi
}

# what the install may write outside the prefix: nothing (the host's drill dirs stay as they were)
host_dirs="/etc/faultline /var/lib/faultline /usr/local/share/faultline /usr/local/lib/systemd/system/faultline-drill@.service"
host_before=$(for d in $host_dirs; do [ -e "$d" ] && echo "$d"; done)

if ! cmake --install "$bin" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
	bad "cmake --install --prefix:" && sed 's/^/  /' "$tmp/install.log" | tail -20
	echo "install: $passed passed, $failed failed"
	exit 1
fi
ok

# ---- the tree: exactly what the docs name, nothing more ----
{
	echo bin/faultline
	echo share/man/man1/faultline.1
	printf 'lib/systemd/system/%s\n' faultline-recover.service faultline-drill@.service faultline-drill@.timer
	for s in "$src"/scenarios/*.yaml; do echo "share/faultline/scenarios/${s##*/}"; done
	for d in "$src"/docs/*.md; do
		case ${d##*/} in development.md | benchmarks.md) ;; *) echo "share/doc/faultline/${d##*/}" ;; esac
	done
} | sort >"$tmp/want"
(cd "$prefix" && find . -type f -o -type l | sed 's|^\./||' | sort) >"$tmp/got"
if diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then ok; else bad "installed tree differs from what the docs say (- missing, + unexpected):" && sed 's/^/  /' "$tmp/diff" | grep '^  [-+][^-+]'; fi
for s in "$src"/scenarios/*.yaml; do
	cmp -s "$s" "$prefix/share/faultline/scenarios/${s##*/}" || bad "installed ${s##*/} differs from the source"
done
ok
# what this install said it wrote (the build tree's install_manifest.txt is shared with other installs)
sed -n 's/^-- \(Installing\|Up-to-date\): //p' "$tmp/install.log" >"$tmp/written"
if [ "$(wc -l <"$tmp/written")" -ge "$(wc -l <"$tmp/want")" ] && ! grep -v "^$prefix/" "$tmp/written" >"$tmp/outside"; then ok; else bad "installed outside the prefix:" && head -5 "$tmp/outside"; fi
host_after=$(for d in $host_dirs; do [ -e "$d" ] && echo "$d"; done)
if [ "$host_before" = "$host_after" ]; then ok; else bad "the install created or removed host paths: '$host_before' -> '$host_after'"; fi

# ---- the binary ----
ifl=$prefix/bin/faultline
if [ -x "$ifl" ] && [ "$("$ifl" version)" = "$("$fl" version)" ]; then ok; else bad "installed binary missing or not the built one"; fi
if "$ifl" validate "$prefix"/share/faultline/scenarios/*.yaml >"$tmp/out" 2>&1; then ok; else bad "installed scenarios do not validate:" && head -5 "$tmp/out"; fi

# ---- the systemd units: paths into this prefix, options faultline has, verified by systemd ----
if grep -n '@[A-Z_]*@' "$units"/faultline-* >"$tmp/out"; then bad "unconfigured @VAR@ left in units:" && head -3 "$tmp/out"; else ok; fi
for u in faultline-recover.service faultline-drill@.service; do
	# every command the unit runs is the installed binary, with options its command accepts
	grep -E '^Exec[A-Za-z]*=' "$units/$u" | sed 's/^Exec[A-Za-z]*=//' >"$tmp/cmds"
	[ -s "$tmp/cmds" ] || bad "$u runs nothing"
	while read -r exe cmd args; do
		[ "$exe" = "$ifl" ] || bad "$u runs '$exe', not $ifl"
		"$ifl" "$cmd" --help >"$tmp/help" 2>&1 || bad "$u: '$cmd' is not a faultline command"
		for o in $(grep -oE -- '--[a-z-]+' <<<"$args"); do
			grep -qE -- "$o( |$)" "$tmp/help" || bad "$u: faultline $cmd has no option $o"
		done
	done <"$tmp/cmds"
	ok
	for doc in $(grep -oE 'file://[^ ]+' "$units/$u" | sed 's|^file://||'); do
		[ -f "$doc" ] || bad "$u: Documentation $doc is not installed"
	done
done
grep -q '^ExecStart=.* recover --state-dir /run/faultline$' "$units/faultline-recover.service" &&
	grep -q '^WantedBy=multi-user.target' "$units/faultline-recover.service" && ok || bad "faultline-recover.service does not recover /run/faultline at boot"
grep -q '^KillMode=mixed' "$units/faultline-drill@.service" && grep -q '^ExecStopPost=.* recover ' "$units/faultline-drill@.service" &&
	! grep -q '^RuntimeDirectory=' "$units/faultline-drill@.service" && ok || bad "drill unit: a stop must leave the guardian and recover run; /run/faultline must not be systemd's"
grep -q '^OnCalendar=' "$units/faultline-drill@.timer" && grep -q '^Persistent=true' "$units/faultline-drill@.timer" &&
	grep -q '^RandomizedDelaySec=' "$units/faultline-drill@.timer" && ok || bad "drill timer: OnCalendar, Persistent, RandomizedDelaySec"
if command -v systemd-analyze >/dev/null 2>&1; then
	# an instance of the templates, as `systemctl enable faultline-drill@NAME.timer` makes one;
	# MANPATH lets verify resolve Documentation=man:faultline(1) to the page just installed
	mkdir -p "$tmp/verify"
	cp "$units"/faultline-recover.service "$tmp/verify/"
	cp "$units/faultline-drill@.service" "$tmp/verify/faultline-drill@check.service"
	cp "$units/faultline-drill@.timer" "$tmp/verify/faultline-drill@check.timer"
	for u in faultline-recover.service faultline-drill@check.service faultline-drill@check.timer; do
		silent "systemd-analyze verify $u" env MANPATH="$prefix/share/man" systemd-analyze verify "$tmp/verify/$u"
	done
	silent "systemd-analyze verify (templates)" env MANPATH="$prefix/share/man" systemd-analyze verify "$units/faultline-drill@.service" "$units/faultline-drill@.timer"
	cal=$(sed -n 's/^OnCalendar=//p' "$units/faultline-drill@.timer")
	silent "OnCalendar=$cal" sh -c "systemd-analyze calendar '$cal' >/dev/null"
else
	bad "systemd-analyze is missing (package systemd, scripts/deps.sh installs it): the units were not verified"
fi

# ---- the man page: lints clean, documents every command, option and exit code ----
silent "groff -man -ww lint" groff -man -Tutf8 -ww -z "$man1"
if command -v mandoc >/dev/null 2>&1; then silent "mandoc -Tlint" mandoc -Tlint -Wwarning "$man1"; fi
if [ "$(MANPATH="$prefix/share/man" man -w faultline 2>/dev/null)" = "$man1" ]; then ok; else bad "man -w faultline does not find $man1"; fi
sed 's/\\-/-/g' "$man1" >"$tmp/man.txt"
ver=$("$fl" version | awk '{print $2}')
grep -q "^\.TH FAULTLINE 1 .*\"faultline $ver\"" "$tmp/man.txt" && ok || bad "man page .TH does not carry version $ver"
for cmd in run validate plan recover list version; do
	grep -qE "^\.BI? $cmd( |$)" "$tmp/man.txt" || bad "man page does not describe the command $cmd"
	# every option each command's --help prints is an item of its own (.B/.BI --opt), not a passing mention
	for o in $("$fl" "$cmd" --help | grep -oE -- '--[a-z][a-z-]*' | grep -vx -- --help | sort -u); do
		grep -qE -- "^\.BI? $o( |$)" "$tmp/man.txt" || bad "man page does not describe $o (faultline $cmd --help prints it)"
	done
done
for o in $("$fl" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u) --version; do
	grep -qE -- "(^|[^a-z-])$o([^a-z-]|$)" "$tmp/man.txt" || bad "man page lacks $o (faultline --help)"
done
sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' "$tmp/man.txt" >"$tmp/exit.txt"
for n in $(sed -n 's/^[[:space:]]*FL_EXIT_[A-Z]* = \([0-9]*\),.*/\1/p' "$src/controller/exitcodes.h"); do
	grep -qx "\.B $n" "$tmp/exit.txt" || bad "man page EXIT STATUS lacks $n (controller/exitcodes.h)"
done
for v in TMPDIR FAULTLINE_FAILPOINT; do grep -q "^\.B $v" "$tmp/man.txt" || bad "man page ENVIRONMENT lacks $v"; done
for v in $(grep -ohE 'getenv\("[A-Z_]+"\)' "$src"/controller/*.c "$src"/injector/*.c | sed 's/getenv("\(.*\)")/\1/' | sort -u); do
	grep -q "^\.B $v" "$tmp/man.txt" || bad "man page ENVIRONMENT lacks $v, which the code reads"
done
for doc in $(grep -oE '^\.I [a-z-]+\.md' "$tmp/man.txt" | awk '{print $2}'); do
	[ -f "$prefix/share/doc/faultline/$doc" ] || bad "man page SEE ALSO names $doc, which is not installed"
done
ok

# ---- the Kubernetes CronJob: parses, is privileged on the host's pid and net, and its scenario is valid ----
kube=$src/deploy/kubernetes/faultline-cronjob.yaml
if python3 - "$kube" "$tmp/kube-scenarios" >"$tmp/out" 2>&1 <<'EOF'; then ok; else bad "CronJob:" && sed 's/^/  /' "$tmp/out"; fi
import os, shlex, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"]: d for d in docs}
assert set(kinds) == {"ConfigMap", "CronJob"}, kinds.keys()
cj = kinds["CronJob"]
assert cj["apiVersion"] == "batch/v1" and cj["spec"]["schedule"], "a batch/v1 CronJob with a schedule"
job = cj["spec"]["jobTemplate"]["spec"]
pod = job["template"]["spec"]
assert pod["hostPID"] is True and pod["hostNetwork"] is True, "hostPID and hostNetwork"
assert pod["restartPolicy"] == "Never" and job["backoffLimit"] == 0, "a failed drill is not retried"
containers = pod.get("initContainers", []) + pod["containers"]
for c in containers:
    assert c["securityContext"]["privileged"] is True, c["name"] + " is not privileged"
vols = {v["name"]: v for v in pod["volumes"]}
cm = kinds["ConfigMap"]
drill = pod["containers"][0]
mounts = {m["name"]: m["mountPath"] for m in drill["volumeMounts"]}
cmvol = [n for n, v in vols.items() if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
assert cmvol and mounts.get(cmvol[0]) == "/etc/faultline", "the scenarios ConfigMap at /etc/faultline"
script = " ".join(drill["command"])
os.makedirs(sys.argv[2])
for key, text in cm["data"].items():
    assert "/etc/faultline/" + key in script, "the drill runs " + key
    open(os.path.join(sys.argv[2], key), "w").write(text)
# the options the job passes to `faultline run`, for the shell to check against --help
run = script[script.index("faultline run"):]
open(sys.argv[2] + ".opts", "w").write(" ".join(sorted({w for w in shlex.split(run.replace("\\\n", " ")) if w.startswith("--")})))
EOF
for o in $(cat "$tmp/kube-scenarios.opts" 2>/dev/null); do
	"$fl" run --help | grep -qE -- "$o( |$)" || bad "CronJob passes $o, which faultline run does not take"
done
for s in "$tmp"/kube-scenarios/*.yaml; do
	# the job adds target.pid from pgrep; validate it as the job will run it
	if "$ifl" validate "$s" --set target.pid=4242 >"$tmp/out" 2>&1; then ok; else bad "CronJob scenario ${s##*/}:" && head -5 "$tmp/out"; fi
done

# ---- docs/ci-gating.md: every YAML block parses; every --set it shows is valid on the scenario it names ----
ci=$src/docs/ci-gating.md
if python3 - "$ci" >"$tmp/out" 2>&1 <<'EOF'; then ok; else bad "ci-gating.md YAML:" && sed 's/^/  /' "$tmp/out"; fi
import re, sys, yaml
text = open(sys.argv[1]).read()
blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
assert len(blocks) >= 2, "a GitHub Actions and a GitLab CI job"
gh, gl = (yaml.safe_load(b) for b in blocks[:2])
steps = [s.get("run", "") for j in gh["jobs"].values() for s in j["steps"]]
assert any("faultline run" in s and "--junit" in s for s in steps), "GitHub job runs a drill with --junit"
job = next(iter(gl.values()))
assert any("faultline run" in l and "--junit" in l for l in job["script"]), "GitLab job runs a drill with --junit"
assert job["artifacts"]["reports"]["junit"] and job["artifacts"]["when"] == "always"
EOF
# and the man page's, as its reader sees them (\- is -, \(dq is ")
# (not `sed | grep -q`: under pipefail, grep's early exit makes sed's SIGPIPE the pipeline's status)
grep -q 'timeout-storm.yaml' < <(sed 's/\\(dq/"/g' "$tmp/man.txt") || bad "faultline.1 no longer names timeout-storm.yaml: update this test"
{ cat "$ci"; sed 's/\\(dq/"/g' "$tmp/man.txt"; } | grep -oE -- "--set ('[^']*'|[^ \`'\"\\]+)" | grep = | sort -u >"$tmp/sets"
scn=$src/scenarios/timeout-storm.yaml
grep -q 'timeout-storm.yaml' "$ci" || bad "ci-gating.md no longer names timeout-storm.yaml: update this test"
all=()
while read -r line; do
	eval "set -- $line" # the doc's own quoting
	all+=("$1" "$2")
	"$fl" validate "$scn" "$1" "$2" >"$tmp/out" 2>&1 || bad "example '$line' (ci-gating.md or faultline.1) is not valid on ${scn##*/}: $(head -2 "$tmp/out")"
done < <(grep -v "^--set KEY=VALUE$" "$tmp/sets")
[ "${#all[@]}" -ge 10 ] || bad "ci-gating.md: found only ${#all[@]} words of --set examples"
"$fl" plan "$scn" "${all[@]}" >"$tmp/out" 2>&1 && ok || bad "ci-gating.md --set examples together do not plan: $(head -3 "$tmp/out")"
for n in 0 1 2 3 4; do grep -qE "^\| $n \|" "$ci" || bad "ci-gating.md exit-code table lacks $n"; done

# DESTDIR (packaging) keeps the configured prefix in the units, and files under DESTDIR
cfg_prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$bin/CMakeCache.txt")
if DESTDIR="$tmp/dest" cmake --install "$bin" >"$tmp/install.log" 2>&1 &&
	grep -qx "ExecStart=$cfg_prefix/bin/faultline recover --state-dir /run/faultline" "$tmp/dest$cfg_prefix/lib/systemd/system/faultline-recover.service" &&
	[ -x "$tmp/dest$cfg_prefix/bin/faultline" ]; then ok; else bad "DESTDIR install: units must name $cfg_prefix, files land under DESTDIR"; fi

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
