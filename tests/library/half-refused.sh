# half-refused (GO-INC-12): 50% of connects refused, the window shortened from 20 s to 8 s.
sets=(--set phases.baseline=3s --set phases.recovery=6s --set faults.refused.duration=8s)
# Half of the connects the kernel saw were failed (naive makes hundreds; hardened's pool few or none).
check() {
	python3 - "$tmp/$1.json" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
o = r["faults"][0]["observed"]
m, a = o.get("calls_matched"), o.get("calls_failed")
if m is None or a is None or a > m:
    print("observed counts %r of %r" % (a, m))
elif sys.argv[2] == "naive" and (m < 300 or abs(a / m - 0.5) > 0.06):
    print("naive: %d of %d connects refused, not 50%% +- 6" % (a, m))
else:
    print("ok: %d of %d connects refused (%s)" % (a, m, o.get("backend")))
PY
}
