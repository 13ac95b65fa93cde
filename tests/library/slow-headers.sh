# slow-headers (GO-INC-2): 300 slow clients, their window shortened from 20 s to 8 s.
sets=(--set phases.baseline=3s --set phases.recovery=6s --set faults.slow-clients.duration=8s)
# The swarm was really there both times: naive held every slow connection for the whole window;
# hardened held none beyond its 2 s ReadHeaderTimeout (most it shed at once: its fds were full of
# them; the swarm replaced each one, as attackers do).
check() {
	python3 - "$tmp/$1.json" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
o = r["faults"][0]["observed"]
why = []
if o.get("connects_total", 0) < 300:
    why.append("only %r connects" % o.get("connects_total"))
if sys.argv[2] == "naive":
    if o.get("closed_by_server", -1) != 0 or o.get("held_longest_s", 0) < 7.5:
        why.append("naive closed %r, longest held %r s" % (o.get("closed_by_server"), o.get("held_longest_s")))
    verdict = "all %r slow connections held %r s, none closed" % (o.get("connects_total"), o.get("held_longest_s"))
else:
    longest = o.get("held_longest_s", 99)
    if o.get("closed_by_server", 0) < 300 or longest > 2.6:
        why.append("hardened closed %r, held one %r s" % (o.get("closed_by_server"), longest))
    verdict = "%r slow connections closed, none held over %r s" % (o.get("closed_by_server"), longest)
print("; ".join(why) if why else "ok: " + verdict)
PY
}
