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
# the whole 200 ms drill, where auto must pick netem: configured vs observed, once per round trip
FL_BIN=$build/faultline FL_BINARY_DIR=$build FL_SOURCE_DIR=$PWD bash tests/e2e/test_net_drill.sh netem || rc=1
exit $rc
