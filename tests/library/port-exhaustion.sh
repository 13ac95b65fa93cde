# port-exhaustion (GO-INC-4): the whole ephemeral range toward the database, its window shortened from 20 s to 8 s.
sets=(--set phases.baseline=3s --set phases.recovery=6s --set faults.no-ports.duration=8s)
# hardened again with one warmed connection: the calls share the few it has, and its dials, which
# can find no port, try connect() once per 20 ms for the whole process (-redial-every). Each such
# connect() walks the whole range first (2.2 ms of CPU, bench_ports); when every waiting call redialled
# every few ms on its own, this variant served 2.5% of requests.
more=("hardened-warm1 0 hardened -warm 1")
# The kernel (sock_diag) saw at least 99% of the range held toward the database, none after the revert.
check() {
	python3 - "$tmp/$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
o = r["faults"][0]["observed"]
held, size = o.get("ports_held", 0), o.get("range_size", 0)
if size < 1000 or held < 0.99 * size or o.get("ports_held_after_revert", -1) != 0:
    print("held %r of %r, %r after revert" % (held, size, o.get("ports_held_after_revert")))
else:
    print("ok: %d of %d ports held toward the database, 0 after the revert" % (held, size))
PY
}
