# timeout-storm (GO-INC-1): the stall kept at 15 s, its window shortened from 20 s to 8 s.
sets=(--set phases.baseline=3s --set phases.recovery=6s --set faults.db-lock.duration=8s)
# Every packet to the database's port was held, none longer than the 15 s configured, and since the
# stall outlasts the 8 s window, the first ones were held until the revert released them.
check() {
	python3 - "$tmp/$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["faults"][0]
c, o = f["configured"], f["observed"]
why = []
if c.get("delay") != "15s":
    why.append("configured delay %r" % c.get("delay"))
m, d = o.get("packets_matched", 0), o.get("packets_delayed", 0)
if m < 20 or d != m:
    why.append("%d of %d matched packets delayed" % (d, m))
hmax = o.get("hold_ms_max", 0)
if not 7900 <= hmax <= 15050:
    why.append("longest hold %.0f ms: expected the 8 s window (7.9-15 s)" % hmax)
print("ok: %d packets held, longest %.0f ms, backend %s" % (d, hmax, o.get("backend")) if not why else "; ".join(why))
PY
}
