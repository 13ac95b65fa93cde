# stop-the-world (GO-INC-10): the database (`downstream`, the service's child) frozen for the fault.
# The shipped phases are short already; the test runs them as shipped, recovery a little shorter.
sets=(--set phases.recovery=4s)
check() {
	python3 - "$tmp/$1.json" "$tmp/$1.d/target.log" "$1" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
log = open(sys.argv[2], errors="replace").read()
who = sys.argv[3]
f = r["faults"][0]
o, c = f["observed"], f["configured"]
m = re.fullmatch(r"([0-9.]+)(ms|s)", c["duration"])
want = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
pids = o.get("frozen_pids", "").split()
main = r["target"]["pid"]
def no(why):
    print(why)
    sys.exit(0)
# the freeze hit the database and only it, for as long as configured, as /proc saw it
if c.get("scope") != "child" or c.get("comm") != "downstream":
    no("configured scope/comm %r/%r, expected child/downstream" % (c.get("scope"), c.get("comm")))
if len(pids) != 1 or o.get("frozen") != 1 or o.get("comm") != "downstream":
    no("frozen %r (pids %r, comm %r): expected exactly one process, downstream" % (o.get("frozen"), pids, o.get("comm")))
if int(pids[0]) == main:
    no("the frozen pid %s is the service itself (pid %d), not its database" % (pids[0], main))
fs = o.get("frozen_s")
if fs is None or abs(fs - want) > 0.1:
    no("frozen for %r s by /proc, configured %.3f s" % (fs, want))
if o.get("ran_while_frozen") != 0:
    no("the database made %r context switches while it should have been stopped" % o.get("ran_while_frozen"))
ph = {p["name"]: p for p in r["phases"]}
p99 = ph["faults"]["latency_ms"]["p99"] / 1000
stats = re.findall(r"^(?!downstream).*final stats (\{.*\})", log, re.M)
if not stats:
    no("no 'final stats' line from the service in target.log")
s = json.loads(stats[-1])
if who == "naive":
    # no deadline: the requests hang for the whole freeze
    if p99 < want - 0.5:
        no("naive's fault-phase p99 %.2f s is shorter than the %.1f s freeze: did it hang?" % (p99, want))
    print("ok: pid %s (downstream, not the service's %d) frozen %.3f s for %.3f s configured, 0 context switches; naive's p99 %.2f s" % (pids[0], main, fs, want, p99))
else:
    # fast answers during the freeze (504 at the deadline, then 503 from the breaker) ...
    if p99 > 0.3:
        no("hardened's fault-phase p99 %.3f s: not answering within its 200 ms deadline" % p99)
    if "breaker open" not in log:
        no("hardened's breaker never opened during the freeze")
    # ... and real answers (200) around it: the status list counts 503 as good, its own count does
    # not. Its breaker may hold 503 for up to recover_within (2 s) after the freeze; a service left
    # shedding for good would have served 200 in the baseline only.
    around = ph["baseline"]["requests"] + ph["recovery"]["requests"]
    rate = around / (ph["baseline"]["end"] - ph["baseline"]["start"] + ph["recovery"]["end"] - ph["recovery"]["start"])
    if s["ok"] < around - 2 * rate:
        no("hardened answered 200 to %d requests: more than 2 s of the %d outside the freeze were not 200" % (s["ok"], around))
    print("ok: pid %s frozen %.3f s (/proc) for %.3f s configured, 0 context switches; hardened p99 %.0f ms during, %d x 200 (of %d around the freeze), breaker opened" % (pids[0], fs, want, p99 * 1000, s["ok"], around))
PY
}
