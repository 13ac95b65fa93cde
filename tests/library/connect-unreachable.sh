# connect-unreachable (GO-INC-7): every connect() to the database's port fails with EHOSTUNREACH.
# A shorter partition than the shipped 10 s; the SLO as shipped.
sets=(--set faults.partition.duration=6s --set phases.recovery=4s)
check() {
	python3 - "$tmp/$1.json" "$tmp/$1.d/target.log" "$1" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
log = open(sys.argv[2], errors="replace").read()
who = sys.argv[3]
f = r["faults"][0]
o, c = f["observed"], f["configured"]
def no(why):
    print(why)
    sys.exit(0)
if c.get("errno") != "EHOSTUNREACH" or c.get("probability") != "100%" or c.get("dst_port") != "18501":
    no("configured %r: expected EHOSTUNREACH at 100%% on port 18501" % c)
m, a = o.get("calls_matched"), o.get("calls_failed")
if m is None or a is None:
    no("no calls_matched/calls_failed in the report: %r" % o)
# 100% configured: every connect the hook matched failed, and with the errno named
if a != m:
    no("%d of %d matched connects failed, configured 100%%" % (a, m))
if o.get("errno") != "EHOSTUNREACH":
    no("observed errno %r" % o.get("errno"))
faults = next(p for p in r["phases"] if p["name"] == "faults")
if who == "naive":
    # a new connection per call: one failed connect per request, each seen by the service as such
    if m < 0.9 * faults["requests"]:
        no("naive made %d connects to the database for %d requests in the fault window: not one per call" % (m, faults["requests"]))
    if "no route to host" not in log:
        no("naive's log never says 'no route to host'")
    print("ok: %d of %d connects failed with EHOSTUNREACH (%d requests in the window); 'no route to host' in naive's log" % (a, m, faults["requests"]))
else:
    # the pool, warmed before the partition, carries the load: (almost) no new connect is needed
    stats = re.findall(r"final stats (\{.*\})", log)
    if not stats:
        no("no 'final stats' line in hardened's log")
    s = json.loads(stats[-1])
    if m > 16:
        no("hardened made %d new connects to the database during the partition: its pool did not carry the load" % m)
    if s["ok"] < 0.95 * sum(p["requests"] for p in r["phases"]):
        no("hardened answered 200 to only %d requests" % s["ok"])
    print("ok: %d of %d connects failed (hardened dialled %d times in the partition); %d x 200 by its own count" % (a, m, m, s["ok"]))
PY
}
