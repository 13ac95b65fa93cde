# lossy-link (GO-INC-9): 20 ms +- 10 ms and 10% loss toward the downstream, the window shortened from 20 s to 10 s.
sets=(--set phases.baseline=3s --set phases.recovery=6s --set faults.bad-link.duration=10s)
# What the delayer did matches what was asked: ~10% dropped, held 20 ms on average, and no packet
# held longer than its 30 ms at most plus what the delayer itself reports it released late (on a
# shared 2-CPU host a descheduled delayer can be 10 ms late once in a run; it must be rare).
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
late, late_max = o.get("released_late", -1), o.get("late_ms_max", -1)
if late < 0 or late_max < 0:
    why.append("the delayer reports no lateness")
elif not (18.5 <= mean <= 21.5 and hmax <= 30 + late_max + 0.5):
    why.append("held %.2f ms on average, %.2f ms at most (%.2f ms late at worst): configured 20 ms +- 10"
               % (mean, hmax, late_max))
elif late > 0.01 * m:
    why.append("%d of %d packets released over 1 ms late" % (late, m))
print("ok: %d of %d packets dropped (%.1f%%), held %.1f ms on average (max %.1f; %d released late, "
      "worst %.1f ms)" % (dropped, m, 100.0 * dropped / m, mean, hmax, late, late_max) if not why else "; ".join(why))
PY
}
