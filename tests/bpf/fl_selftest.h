/* What fl_selftest.bpf.c and test_bpf_pipeline.c share: the slots of the counters map. */
#ifndef FL_SELFTEST_H
#define FL_SELFTEST_H

/* Plain enum, no types: included after vmlinux.h on the BPF side and after libc on the user side. */
enum fl_selftest_slot {
	FL_SELFTEST_REFUSED = 0, /* connects to target_port the hook refused */
	FL_SELFTEST_PASSED = 1,  /* other IPv4 TCP connects it let through */
	FL_SELFTEST_NSLOTS,
};

#endif
