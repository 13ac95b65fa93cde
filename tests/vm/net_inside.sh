#!/usr/bin/env bash
# Runs inside the test VM (Debian's kernel, which has sch_netem): the network injector tests that this host's kernel cannot run.
# Usage (from vm.sh run): net_inside.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/inside.sh"
vm_require

build=${1:?usage: net_inside.sh BUILD_DIR}
# veth is not requested by the kernel itself; qdisc and classifier modules are (tc asks for them)
vm_modprobe veth sch_netem sch_htb sch_tbf cls_bpf || exit 1
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
rc=0
# the same cmocka binary as on the host: here its netem cases run instead of skipping
"$build/tests/integration/test_net_tc" || rc=1
# the end-to-end delay drill with the netem backend, judged by faultline itself
if [ -x "$build/tests/e2e-net-netem.sh" ]; then
	"$build/tests/e2e-net-netem.sh" || rc=1
fi
exit $rc
