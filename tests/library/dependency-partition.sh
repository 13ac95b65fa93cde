# dependency-partition (GO-INC-6): the database blackholed, its window shortened from 20 s to 8 s.
# Besides the gate, the "zero alerts" half of the incident: /healthz is polled throughout, and must
# stay 200 on naive while the database is gone, and turn 503 on hardened.
sets=(--set phases.baseline=3s --set phases.recovery=6s --set faults.db-unreachable.duration=8s)

setup() {
	(while :; do
		echo "$(date +%s.%N) $(curl -s -o /dev/null -m 1 -w '%{http_code}' http://127.0.0.1:18440/healthz)"
		sleep 0.2
	done) >"$tmp/healthz.log" 2>/dev/null &
	pids+=($!)
}

check() {
	python3 - "$tmp/$1.json" "$tmp/healthz.log" "$1" <<'PY'
import calendar, json, sys, time
r = json.load(open(sys.argv[1]))
f = r["faults"][0]
o = f["observed"]
why = []
if o.get("packets_matched", 0) < 10 or o.get("packets_dropped") != o.get("packets_matched"):
    why.append("dropped %r of %r matched packets" % (o.get("packets_dropped"), o.get("packets_matched")))
# the run's clock starts at `started` (whole seconds): look well inside the fault window
t0 = calendar.timegm(time.strptime(r["started"], "%Y-%m-%dT%H:%M:%SZ"))
lo, hi = t0 + f["applied_at"] + 3, t0 + f["reverted_at"] - 1
codes = [line.split()[1] for line in open(sys.argv[2]) if len(line.split()) == 2 and lo <= float(line.split()[0]) <= hi]
if len(codes) < 5:
    why.append("only %d /healthz samples inside the fault window" % len(codes))
elif sys.argv[3] == "naive":
    if codes.count("200") != len(codes):
        why.append("naive's /healthz was not always 200: %s" % " ".join(codes))
else:
    if codes.count("503") < 0.8 * len(codes):
        why.append("hardened's /healthz was 503 only %d of %d times" % (codes.count("503"), len(codes)))
print("ok: %d packets dropped; /healthz %s in %d samples during the outage" % (
    o["packets_dropped"], ",".join(sorted(set(codes))), len(codes)) if not why else "; ".join(why))
PY
}
