# lossy-link (GO-INC-9): 20 ms +- 10 ms and 10% loss toward the downstream, the window shortened from 20 s to 10 s.
sets=(--set phases.baseline=3s --set phases.recovery=6s --set faults.bad-link.duration=10s)
# What the delayer did matches what was asked: ~10% dropped, held 20 ms on average, never over 30 ms.
check() {
	python3 - "$tmp/$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
o = r["faults"][0]["observed"]
m, dropped = o.get("packets_matched", 0), o.get("packets_dropped", 0)
why = []
if m < 500:
    why.append("only %d packets matched" % m)
elif abs(dropped / m - 0.10) > 0.035:
    why.append("%d of %d dropped: not 10%% +- 3.5" % (dropped, m))
mean, hmax = o.get("hold_ms_mean", 0), o.get("hold_ms_max", 0)
if not (18.5 <= mean <= 21.5 and hmax <= 35):
    why.append("held %.2f ms on average, %.2f ms at most: configured 20 ms +- 10" % (mean, hmax))
print("ok: %d of %d packets dropped (%.1f%%), held %.1f ms on average (max %.1f)" % (
    dropped, m, 100.0 * dropped / m, mean, hmax) if not why else "; ".join(why))
PY
}
