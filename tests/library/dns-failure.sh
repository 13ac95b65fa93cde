# dns-failure (GO-INC-8): run as shipped (5 s baseline, a 10 s DNS hang, 6 s recovery, ~21 s a run).
# The target hosts its own DNS responder, so three counters see each reply: the responder's answers
# and the resolver's receipts (the `final stats` line in target.log) and the BPF program's drops
# (the JSON report). Every reply answered but never received must be one the fault dropped.
sets=()
check() {
	python3 - "$tmp/$1.json" "$tmp/$1.d/target.log" "$1" <<'EOF'
import json, re, sys
rep, log, target = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), sys.argv[3]
f = rep["faults"][0]
cfg, obs = f["configured"], f["observed"]
def fail(msg):
    print(msg)
    sys.exit(0)
if (cfg["mode"], cfg["port"], cfg["probability"]) != ("timeout", "18453", "100%"):
    fail("configured %s, expected mode timeout, port 18453, 100%%" % cfg)
matched, dropped = int(obs.get("replies_matched", 0)), int(obs.get("replies_dropped", 0))
if matched < 2 or dropped != matched or obs.get("dropped_observed") != 1.0:
    fail("observed %d of %d replies dropped (%s), configured 100%%" % (dropped, matched, obs.get("dropped_observed")))
stats = re.findall(r"final stats (\{.*\})", log)
if not stats or "dns" not in json.loads(stats[-1]):
    fail("no 'final stats' line with dns counts in target.log")
dns = json.loads(stats[-1])["dns"]
lost = dns["answered"] - dns["replies"]
# the fault lets queries out and drops the answers: every query answered, every lost answer dropped
if abs(dns["queries"] - dns["answered"]) > 2:
    fail("resolver sent %d queries, responder answered %d" % (dns["queries"], dns["answered"]))
if abs(lost - dropped) > 2:
    fail("responder answered %d, resolver received %d: %d lost, but the fault dropped %d"
         % (dns["answered"], dns["replies"], lost, dropped))
figures = "%d replies dropped of %d matched; responder answered %d, resolver got %d" % (
    dropped, matched, dns["answered"], dns["replies"])
faults = [p for p in rep["phases"] if p["name"] == "faults"][0]
if target == "naive":
    # the requests hang on the lookup (load timeouts), they do not fail fast
    if faults["outcomes"]["timeout"] < faults["requests"] // 2:
        fail("only %d of %d fault-window requests timed out: naive should hang on DNS"
             % (faults["outcomes"]["timeout"], faults["requests"]))
    if not re.search(r"lookup db\.faultline\.test .*127\.0\.0\.1:18453: i/o timeout", log):
        fail("naive's log has no 'lookup db.faultline.test ... 127.0.0.1:18453: i/o timeout'")
    print("ok: %s; %d of %d requests timed out" % (figures, faults["outcomes"]["timeout"], faults["requests"]))
else:
    # one background refresh a second (-dns-refresh 1s), each failing on its A and AAAA queries
    secs = float(re.match(r"([\d.]+)s$", cfg["duration"]).group(1))
    rf = dns.get("refresh_failed", 0)
    if rf < secs / 2:
        fail("%d background refreshes failed in a %gs DNS hang, expected about %g" % (rf, secs, secs))
    if not rf <= dropped <= 2 * rf + 2:
        fail("%d refreshes failed but %d replies were dropped (1-2 queries each)" % (rf, dropped))
    if "re-resolving db.faultline.test failed" not in log:
        fail("hardened's log never says a re-resolution failed")
    print("ok: %s; %d background refreshes failed, last good answer kept" % (figures, rf))
EOF
}
