/* The netem and tbf backends: a faultline htb root, one class + leaf qdisc per fault, and a BPF classifier so only matched packets are touched; the previous root tree is restored exactly. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netlink/netlink.h>
#include <netlink/msg.h>
#include <netlink/route/class.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>

#include "journal.h"
#include "net.h"
#include "net_tc.h"
#include "net_tc.skel.h"
#include "procfs.h"


/*
 * The tree faultline puts on an interface:
 *
 *   root  htb fa17: default 0          unclassified packets take htb's direct queue: untouched
 *   class fa17:M  (rate ~32 Gbit/s)    one per fault (M = 1..MAX_SLOT)
 *   leaf  fb0M: netem | tbf            the fault's effect
 *   filter parent fa17: prio M bpf     "faultline-RUNID-FAULT": returns fa17:M for matched packets
 *
 * Faults of one run on one interface share the root; the last one out removes it and puts back
 * what was there before (a default qdisc comes back by itself; a user's tree is replayed from
 * the copy saved in the state dir before it was replaced).
 */
#define ROOT_MAJOR 0xfa17u
#define ROOT_HANDLE (ROOT_MAJOR << 16)
#define LEAF_MAJOR 0xfb00u
#define MAX_SLOT 64
#define CLASS_RATE 4000000000u /* bytes/s: high enough never to shape the matched flow itself */
#define MSG_MAX 65536

/* ---- netlink plumbing ------------------------------------------------------------------------ */

struct nl_reply {
	int error;                 /* kernel errno (negative), 0 = ack */
	char extack[256];          /* the kernel's own words, when it gives them */
};

static int err_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct nl_reply *r = arg;
	struct nlmsghdr *h = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);

	(void)nla;
	r->error = e->error;
	if (h->nlmsg_flags & NLM_F_ACK_TLVS) {
		/* the TLVs follow the echoed request (or just its header when capped) */
		size_t off = sizeof(*e) + ((h->nlmsg_flags & NLM_F_CAPPED) ? 0 : e->msg.nlmsg_len - NLMSG_HDRLEN);
		int rem = (int)h->nlmsg_len - NLMSG_HDRLEN - (int)off;
		struct nlattr *a = (struct nlattr *)((char *)e + off);

		for (; rem > 0 && nla_ok(a, rem); a = nla_next(a, &rem))
			if (nla_type(a) == NLMSGERR_ATTR_MSG)
				snprintf(r->extack, sizeof(r->extack), "%.*s", nla_len(a), (char *)nla_data(a));
	}
	return NL_STOP;
}

static int ack_cb(struct nl_msg *msg, void *arg)
{
	(void)msg;
	((struct nl_reply *)arg)->error = 0;
	return NL_STOP;
}

/* Send one request and wait for its ack: 0 or the kernel's -errno, with its extack in err. */
static int talk(struct nl_sock *sk, struct nl_msg *msg, const char *what, struct fl_err *err)
{
	struct nl_reply r = {.error = -EIO};
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	int rc;

	if (!cb)
		return fl_err_set(err, -ENOMEM, "out of memory");
	nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nl_cb_err(cb, NL_CB_CUSTOM, err_cb, &r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, ack_cb, &r);
	rc = nl_send_auto(sk, msg);
	if (rc >= 0)
		rc = nl_recvmsgs(sk, cb);
	nl_cb_put(cb);
	if (rc < 0 && r.error == -EIO)
		return fl_err_set(err, -EIO, "%s: netlink: %s", what, nl_geterror(rc));
	if (r.error)
		fl_err_set(err, r.error, "%s: %s%s%s", what, strerror(-r.error), r.extack[0] ? ": " : "",
			   r.extack);
	return r.error;
}

/* Raw tc objects as the kernel dumps them: the unit of save, compare and replay. */
struct tcobj {
	struct nlmsghdr *h;
};
struct tclist {
	struct tcobj *v;
	int n, cap;
};

static void tclist_free(struct tclist *l)
{
	for (int i = 0; l && i < l->n; i++)
		free(l->v[i].h);
	if (l)
		free(l->v);
	if (l)
		memset(l, 0, sizeof(*l));
}

static int tclist_add(struct tclist *l, const struct nlmsghdr *h)
{
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 16;
		struct tcobj *v = realloc(l->v, (size_t)cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].h = malloc(h->nlmsg_len);
	if (!l->v[l->n].h)
		return -ENOMEM;
	memcpy(l->v[l->n].h, h, h->nlmsg_len);
	l->n++;
	return 0;
}

static struct tcmsg *tcm_of(const struct nlmsghdr *h)
{
	return NLMSG_DATA(h);
}

static struct nlattr *tca(const struct nlmsghdr *h, int type)
{
	struct nlattr *tb[TCA_MAX + 1];

	if (nlmsg_parse((struct nlmsghdr *)h, sizeof(struct tcmsg), tb, TCA_MAX, NULL) < 0)
		return NULL;
	return tb[type];
}

static const char *kind_of(const struct nlmsghdr *h)
{
	struct nlattr *k = tca(h, TCA_KIND);

	return k ? nla_get_string(k) : "";
}

struct dump_ctx {
	struct tclist *out;
	int ifindex;
	int rc;
};

static int dump_cb(struct nl_msg *msg, void *arg)
{
	struct dump_ctx *c = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct tcmsg)))
		return NL_SKIP;
	/* qdisc dumps cover every interface; keep ours */
	if (tcm_of(h)->tcm_ifindex != c->ifindex)
		return NL_SKIP;
	if (tclist_add(c->out, h))
		c->rc = -ENOMEM;
	return NL_OK;
}

/* RTM_GETQDISC / GETTCLASS / GETTFILTER dump of one interface (filters: of `parent`). */
static int dump(struct nl_sock *sk, int type, int ifindex, uint32_t parent, struct tclist *out,
		struct fl_err *err)
{
	struct tcmsg t = {.tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex, .tcm_parent = parent};
	struct nl_msg *msg = nlmsg_alloc_simple(type, NLM_F_REQUEST | NLM_F_DUMP);
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	struct dump_ctx c = {.out = out, .ifindex = ifindex};
	struct nl_reply r = {0};
	int rc = -ENOMEM;

	if (!msg || !cb || nlmsg_append(msg, &t, sizeof(t), NLMSG_ALIGNTO) < 0)
		goto out;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, dump_cb, &c);
	nl_cb_err(cb, NL_CB_CUSTOM, err_cb, &r);
	rc = nl_send_auto(sk, msg);
	if (rc >= 0)
		rc = nl_recvmsgs(sk, cb);
	rc = r.error ? r.error : rc < 0 ? -EIO : c.rc;
out:
	if (rc)
		fl_err_set(err, rc, "dumping tc objects of ifindex %d: %s", ifindex, strerror(-rc));
	nl_cb_put(cb);
	nlmsg_free(msg);
	return rc;
}

/* ---- what an interface has ------------------------------------------------------------------- */

struct iface_view {
	struct tclist qdiscs;      /* every qdisc but ingress/clsact */
	struct tclist classes;
	int root;                  /* index in qdiscs of the root, -1 none */
	bool ours;                 /* root is a faultline htb */
	char owner_run[64];        /* for ours: the run its filters name ("" if none) */
	int nfilters;              /* filters: on our root, or anywhere in a user's tree */
	bool used_minor[MAX_SLOT + 1];            /* our root's classes fa17:M */
	char slot_filter[MAX_SLOT + 1][160];      /* our root's filter at prio M: its name, "" none */
	bool foreign_filter;       /* our root holds a filter of another run, or an unnamed one */
};

static void view_free(struct iface_view *v)
{
	tclist_free(&v->qdiscs);
	tclist_free(&v->classes);
}

/* The name a bpf filter carries (TCA_OPTIONS/TCA_BPF_NAME), "" when none. */
static void bpf_filter_name(const struct nlmsghdr *h, char *buf, size_t len)
{
	struct nlattr *o = tca(h, TCA_OPTIONS), *tb[TCA_BPF_MAX + 1];

	buf[0] = '\0';
	if (!o || strcmp(kind_of(h), "bpf") || nla_parse_nested(tb, TCA_BPF_MAX, o, NULL) < 0 ||
	    !tb[TCA_BPF_NAME])
		return;
	snprintf(buf, len, "%s", nla_get_string(tb[TCA_BPF_NAME]));
}

static int view_read(struct nl_sock *sk, int ifindex, struct iface_view *v, struct fl_err *err)
{
	struct tclist all = {0}, filters = {0};
	int rc;

	memset(v, 0, sizeof(*v));
	v->root = -1;
	rc = dump(sk, RTM_GETQDISC, ifindex, 0, &all, err);
	if (rc)
		goto out;
	for (int i = 0; i < all.n; i++) {
		const struct tcmsg *t = tcm_of(all.v[i].h);

		if (t->tcm_parent == TC_H_INGRESS || t->tcm_handle == TC_H_MAKE(TC_H_INGRESS, 0))
			continue; /* ingress and clsact sit beside the root tree: never touched */
		if (tclist_add(&v->qdiscs, all.v[i].h)) {
			rc = -ENOMEM;
			goto out;
		}
		if (t->tcm_parent == TC_H_ROOT)
			v->root = v->qdiscs.n - 1;
	}
	rc = dump(sk, RTM_GETTCLASS, ifindex, 0, &v->classes, err);
	if (rc)
		goto out;
	if (v->root < 0)
		goto out;
	{
		const struct nlmsghdr *root = v->qdiscs.v[v->root].h;

		v->ours = tcm_of(root)->tcm_handle == ROOT_HANDLE && !strcmp(kind_of(root), "htb");
	}
	if (v->ours) {
		for (int i = 0; i < v->classes.n; i++) {
			uint32_t h = tcm_of(v->classes.v[i].h)->tcm_handle;

			if (TC_H_MAJ(h) == ROOT_HANDLE && TC_H_MIN(h) <= MAX_SLOT)
				v->used_minor[TC_H_MIN(h)] = true;
		}
		rc = dump(sk, RTM_GETTFILTER, ifindex, ROOT_HANDLE, &filters, err);
		for (int i = 0; !rc && i < filters.n; i++) {
			uint32_t prio = TC_H_MAJ(tcm_of(filters.v[i].h)->tcm_info) >> 16;
			char name[160], run[64];

			/* a filter dump holds one header line per (prio, protocol) chain as well */
			if (!tca(filters.v[i].h, TCA_OPTIONS))
				continue;
			v->nfilters++;
			bpf_filter_name(filters.v[i].h, name, sizeof(name));
			if (!fl_net_owned_run_id(name, run, sizeof(run))) {
				v->foreign_filter = true;
				continue;
			}
			if (!v->owner_run[0])
				snprintf(v->owner_run, sizeof(v->owner_run), "%s", run);
			else if (strcmp(v->owner_run, run))
				v->foreign_filter = true;
			if (prio >= 1 && prio <= MAX_SLOT)
				snprintf(v->slot_filter[prio], sizeof(v->slot_filter[prio]), "%s", name);
		}
		goto out;
	}
	/* a user's tree: filters on any of its qdiscs or classes cannot be replayed faithfully */
	if (tcm_of(v->qdiscs.v[v->root].h)->tcm_handle == 0)
		goto out; /* the kernel's default qdisc: nothing to save */
	for (int i = 0; !rc && i < v->qdiscs.n + v->classes.n; i++) {
		const struct nlmsghdr *h = i < v->qdiscs.n ? v->qdiscs.v[i].h : v->classes.v[i - v->qdiscs.n].h;

		tclist_free(&filters);
		rc = dump(sk, RTM_GETTFILTER, ifindex, tcm_of(h)->tcm_handle, &filters, err);
		v->nfilters += filters.n;
	}
out:
	tclist_free(&all);
	tclist_free(&filters);
	if (rc)
		view_free(v);
	return rc;
}

static bool default_root(const struct iface_view *v)
{
	return v->root < 0 || tcm_of(v->qdiscs.v[v->root].h)->tcm_handle == 0;
}

/* ---- save and replay of a user's tree -------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The user's qdiscs and classes, as dumped, length-prefixed; fsync'd before anything replaces them. */
static int tree_save(const struct iface_view *v, const char *path, struct fl_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc = 0;

	if (fd < 0)
		return fl_err_set(err, -errno, "cannot save the root qdisc tree to %s: %s", path, strerror(errno));
	for (int i = 0; !rc && i < v->qdiscs.n + v->classes.n; i++) {
		const struct nlmsghdr *h = i < v->qdiscs.n ? v->qdiscs.v[i].h : v->classes.v[i - v->qdiscs.n].h;
		uint32_t len = h->nlmsg_len;

		rc = write_all(fd, &len, sizeof(len));
		if (!rc)
			rc = write_all(fd, h, len);
	}
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc) {
		unlink(path);
		return fl_err_set(err, rc, "saving the root qdisc tree to %s: %s", path, strerror(-rc));
	}
	return 0;
}

static int tree_load(const char *path, struct tclist *out, struct fl_err *err)
{
	FILE *f = fopen(path, "re");
	uint32_t len;
	int rc = 0;

	if (!f)
		return -errno;
	while (!rc && fread(&len, sizeof(len), 1, f) == 1) {
		struct nlmsghdr *h;

		if (len < NLMSG_LENGTH(sizeof(struct tcmsg)) || len > MSG_MAX) {
			rc = fl_err_set(err, -EINVAL, "%s is damaged (a record of %u bytes)", path, len);
			break;
		}
		h = malloc(len);
		if (!h || fread(h, len, 1, f) != 1 || h->nlmsg_len != len)
			rc = fl_err_set(err, -EINVAL, "%s is damaged (short record)", path);
		else
			rc = tclist_add(out, h);
		free(h);
	}
	fclose(f);
	return rc;
}

/*
 * The kinds whose dump, sent back as a request, re-creates them exactly (verified after every
 * restore anyway). htb is the one that needs a touch: it dumps its version as 3.17 and accepts
 * only the major, 3.
 */
static const char *const replayable[] = {"htb", "tbf", "pfifo", "bfifo", "pfifo_fast", "prio", "sfq",
					 "fq_codel", "fq", "codel", "netem", "cake", "red", NULL};

static bool kind_replayable(const char *kind)
{
	for (int i = 0; replayable[i]; i++)
		if (!strcmp(kind, replayable[i]))
			return true;
	return false;
}

static void options_as_request(const char *kind, void *opts, int len)
{
	struct nlattr *a;
	int rem;

	if (strcmp(kind, "htb"))
		return;
	nla_for_each_attr(a, (struct nlattr *)opts, len, rem)
		if (nla_type(a) == TCA_HTB_INIT && nla_len(a) >= (int)sizeof(struct tc_htb_glob))
			((struct tc_htb_glob *)nla_data(a))->version = TC_HTB_PROTOVER;
}

/* Re-create one dumped object: the same header, kind and options, as a request. */
static int replay_one(struct nl_sock *sk, const struct nlmsghdr *h, int ifindex, bool replace_root,
		      struct fl_err *err)
{
	int type = h->nlmsg_type == RTM_NEWTCLASS ? RTM_NEWTCLASS : RTM_NEWQDISC;
	struct tcmsg t = *tcm_of(h);
	struct nl_msg *msg = nlmsg_alloc_simple(type, NLM_F_CREATE | (replace_root ? NLM_F_REPLACE : NLM_F_EXCL));
	static const int keep[] = {TCA_KIND, TCA_OPTIONS, TCA_STAB};
	int rc;

	if (!msg)
		return fl_err_set(err, -ENOMEM, "out of memory");
	t.tcm_ifindex = ifindex;
	t.tcm_info = 0;
	rc = nlmsg_append(msg, &t, sizeof(t), NLMSG_ALIGNTO) < 0 ? -ENOMEM : 0;
	for (size_t i = 0; !rc && i < sizeof(keep) / sizeof(keep[0]); i++) {
		struct nlattr *a = tca(h, keep[i]);
		void *copy;

		if (!a)
			continue;
		copy = malloc((size_t)nla_len(a) + 1);
		if (!copy) {
			rc = -ENOMEM;
			break;
		}
		memcpy(copy, nla_data(a), (size_t)nla_len(a));
		if (keep[i] == TCA_OPTIONS && type == RTM_NEWQDISC)
			options_as_request(kind_of(h), copy, nla_len(a));
		if (nla_put(msg, keep[i], nla_len(a), copy) < 0)
			rc = -ENOMEM;
		free(copy);
	}
	if (!rc) {
		char what[96];

		snprintf(what, sizeof(what), "restoring %s %x:%x (%s)", type == RTM_NEWTCLASS ? "class" : "qdisc",
			 TC_H_MAJ(t.tcm_handle) >> 16, TC_H_MIN(t.tcm_handle), kind_of(h));
		rc = talk(sk, msg, what, err);
	}
	nlmsg_free(msg);
	return rc;
}

/* htb's qdisc options carry a live counter (direct_pkts): configuration only is compared. */
static void options_normalize(const struct nlmsghdr *h, void *opts, int len)
{
	struct nlattr *a;
	int rem;

	if (h->nlmsg_type == RTM_NEWTCLASS || strcmp(kind_of(h), "htb"))
		return;
	nla_for_each_attr(a, (struct nlattr *)opts, len, rem)
		if (nla_type(a) == TCA_HTB_INIT && nla_len(a) >= (int)sizeof(struct tc_htb_glob))
			((struct tc_htb_glob *)nla_data(a))->direct_pkts = 0;
}

static bool same_obj(const struct nlmsghdr *a, const struct nlmsghdr *b)
{
	const struct tcmsg *ta = tcm_of(a), *tb = tcm_of(b);
	struct nlattr *oa, *ob;
	void *ca, *cb;
	bool same;

	if (ta->tcm_handle != tb->tcm_handle || ta->tcm_parent != tb->tcm_parent || strcmp(kind_of(a), kind_of(b)))
		return false;
	oa = tca(a, TCA_OPTIONS);
	ob = tca(b, TCA_OPTIONS);
	if (!oa || !ob)
		return !oa && !ob;
	if (nla_len(oa) != nla_len(ob))
		return false;
	ca = malloc((size_t)nla_len(oa) + 1);
	cb = malloc((size_t)nla_len(ob) + 1);
	same = ca && cb;
	if (same) {
		memcpy(ca, nla_data(oa), (size_t)nla_len(oa));
		memcpy(cb, nla_data(ob), (size_t)nla_len(ob));
		options_normalize(a, ca, nla_len(oa));
		options_normalize(b, cb, nla_len(ob));
		same = !memcmp(ca, cb, (size_t)nla_len(oa));
	}
	free(ca);
	free(cb);
	return same;
}

/* Is this saved object in the interface's live tree exactly (made by us, or by the kernel itself)? */
static bool present(const struct iface_view *now, const struct nlmsghdr *h)
{
	const struct tclist *l = h->nlmsg_type == RTM_NEWTCLASS ? &now->classes : &now->qdiscs;

	for (int k = 0; k < l->n; k++)
		if (same_obj(h, l->v[k].h))
			return true;
	return false;
}

/*
 * Put the saved tree back in place of ours: its root replaces our htb in one step (no moment
 * with the default qdisc), then its classes and inner qdiscs, parents before children (passes
 * until nothing more can be added), then a fresh dump must show every saved object as it was.
 */
static int tree_restore(struct nl_sock *sk, int ifindex, const char *path, struct fl_err *err)
{
	struct tclist saved = {0};
	struct iface_view now;
	bool *done = NULL;
	int rc, left, root = -1;

	memset(&now, 0, sizeof(now));

	rc = tree_load(path, &saved, err);
	if (rc)
		goto out;
	done = calloc((size_t)saved.n + 1, sizeof(*done));
	if (!done) {
		rc = fl_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < saved.n; i++)
		if (saved.v[i].h->nlmsg_type != RTM_NEWTCLASS && tcm_of(saved.v[i].h)->tcm_parent == TC_H_ROOT)
			root = i;
	if (root < 0) {
		rc = fl_err_set(err, -EINVAL, "%s holds no root qdisc", path);
		goto out;
	}
	/* our root is replaced by the saved one; the saved one already there means a restore resumes */
	rc = view_read(sk, ifindex, &now, err);
	if (rc)
		goto out;
	if (now.ours) {
		rc = replay_one(sk, saved.v[root].h, ifindex, true, err);
	} else if (!present(&now, saved.v[root].h)) {
		/* someone put another root here since: it is not ours to replace; the copy is stale */
		view_free(&now);
		unlink(path);
		goto out;
	}
	view_free(&now);
	if (rc)
		goto out;
	done[root] = true;
	left = saved.n - 1;
	/*
	 * Parents before children, in passes. Some classes come into being with their qdisc (tbf's
	 * 21:1, prio's bands) and cannot be created: those are already present, exactly.
	 */
	for (int pass = 0; left && pass < 16; pass++) {
		int before = left;

		rc = view_read(sk, ifindex, &now, err);
		if (rc)
			goto out;
		for (int i = 0; i < saved.n; i++) {
			struct fl_err e;

			if (done[i])
				continue;
			fl_err_clear(&e);
			if (present(&now, saved.v[i].h) || !replay_one(sk, saved.v[i].h, ifindex, false, &e)) {
				done[i] = true;
				left--;
			} else {
				*err = e;
			}
		}
		view_free(&now);
		if (left == before)
			break;
	}
	if (left) {
		rc = err->code ? err->code : -EIO;
		goto out;
	}
	rc = view_read(sk, ifindex, &now, err);
	if (rc)
		goto out;
	for (int i = 0; !rc && i < saved.n; i++)
		if (!present(&now, saved.v[i].h))
			rc = fl_err_set(err, -EIO, "restored tree differs from the saved one: %s %x:%x (%s) is "
						   "not back as it was",
					saved.v[i].h->nlmsg_type == RTM_NEWTCLASS ? "class" : "qdisc",
					TC_H_MAJ(tcm_of(saved.v[i].h)->tcm_handle) >> 16,
					TC_H_MIN(tcm_of(saved.v[i].h)->tcm_handle), kind_of(saved.v[i].h));
	view_free(&now);
	if (!rc)
		unlink(path);
out:
	free(done);
	tclist_free(&saved);
	return rc;
}

/* ---- our objects ------------------------------------------------------------------------------ */

static int root_add(struct nl_sock *sk, int ifindex, struct fl_err *err)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	struct nl_msg *msg = NULL;
	int rc;

	if (!q)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
	rtnl_tc_set_handle(TC_CAST(q), ROOT_HANDLE);
	rc = rtnl_tc_set_kind(TC_CAST(q), "htb");
	/* default 0: a packet no filter claims goes to htb's direct queue, unshaped */
	if (!rc)
		rc = rtnl_htb_set_defcls(q, 0);
	if (!rc)
		rc = rtnl_qdisc_build_add_request(q, NLM_F_CREATE | NLM_F_REPLACE, &msg);
	rc = rc < 0 ? fl_err_set(err, -EINVAL, "building the htb root: %s", nl_geterror(rc)) :
		      talk(sk, msg, "adding the htb root qdisc", err);
	nlmsg_free(msg);
	rtnl_qdisc_put(q);
	return rc;
}

static int class_add(struct nl_sock *sk, int ifindex, int minor, struct fl_err *err)
{
	struct rtnl_class *c = rtnl_class_alloc();
	struct nl_msg *msg = NULL;
	int rc;

	if (!c)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rtnl_tc_set_ifindex(TC_CAST(c), ifindex);
	rtnl_tc_set_parent(TC_CAST(c), ROOT_HANDLE);
	rtnl_tc_set_handle(TC_CAST(c), ROOT_HANDLE | (uint32_t)minor);
	rc = rtnl_tc_set_kind(TC_CAST(c), "htb");
	if (!rc)
		rc = rtnl_htb_set_rate(c, CLASS_RATE);
	if (!rc)
		rc = rtnl_htb_set_ceil(c, CLASS_RATE);
	if (!rc)
		rc = rtnl_class_build_add_request(c, NLM_F_CREATE | NLM_F_EXCL, &msg);
	rc = rc < 0 ? fl_err_set(err, -EINVAL, "building the htb class: %s", nl_geterror(rc)) :
		      talk(sk, msg, "adding the fault's htb class", err);
	nlmsg_free(msg);
	rtnl_class_put(c);
	return rc;
}

/* netem's probabilities and correlations: a share of 2^32 - 1, which libnl passes as an int. */
static int prob(double p)
{
	uint32_t v = p >= 1.0 ? UINT32_MAX : (uint32_t)(p * (double)UINT32_MAX + 0.5);

	return (int)v;
}

/* iproute2's distribution tables, wherever this distribution installs them. */
static int dist_load(enum fl_net_dist d, int16_t **data, size_t *n, struct fl_err *err)
{
	static const char *const names[] = {"uniform", "normal", "pareto", "paretonormal"};
	static const char *const dirs[] = {"/usr/lib/tc", "/usr/lib64/tc", "/usr/lib/*/tc", "/usr/local/lib/tc",
					   "/usr/share/tc"};
	char pattern[128];
	glob_t g = {0};
	FILE *f = NULL;
	size_t cap = 0;

	*data = NULL;
	*n = 0;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !f; i++) {
		snprintf(pattern, sizeof(pattern), "%s/%s.dist", dirs[i], names[d]);
		if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc)
			f = fopen(g.gl_pathv[0], "re");
		globfree(&g);
	}
	if (!f) {
		fl_err_set(err, -ENOENT, "no %s.dist table (iproute2's netem distributions)", names[d]);
		fl_err_hint(err, "install iproute2, or use distribution: uniform");
		return -ENOENT;
	}
	for (;;) {
		char tok[32];
		long x;

		if (fscanf(f, " %31s", tok) != 1)
			break;
		if (tok[0] == '#') {
			int ch;

			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
			continue;
		}
		x = strtol(tok, NULL, 10);
		if (*n == cap) {
			int16_t *v = realloc(*data, (cap = cap ? 2 * cap : 4096) * sizeof(**data));

			if (!v) {
				fclose(f);
				free(*data);
				*data = NULL;
				return fl_err_set(err, -ENOMEM, "out of memory");
			}
			*data = v;
		}
		(*data)[(*n)++] = (int16_t)x;
	}
	fclose(f);
	return *n ? 0 : fl_err_set(err, -EINVAL, "%s.dist is empty", names[d]);
}

static bool is_tbf(const struct fl_net_effect *fx)
{
	return fx->rate > 0;
}

static int leaf_add(struct nl_sock *sk, int ifindex, int minor, const struct fl_net_effect *fx,
		    struct fl_err *err)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	struct nl_msg *msg = NULL;
	int16_t *dist = NULL;
	size_t ndist = 0;
	int rc;

	if (!q)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), ROOT_HANDLE | (uint32_t)minor);
	rtnl_tc_set_handle(TC_CAST(q), (LEAF_MAJOR + (uint32_t)minor) << 16);
	rc = rtnl_tc_set_kind(TC_CAST(q), is_tbf(fx) ? "tbf" : "netem");
	if (rc < 0) {
		rc = fl_err_set(err, -EINVAL, "libnl: %s", nl_geterror(rc));
		goto out;
	}
	if (is_tbf(fx)) {
		rtnl_qdisc_tbf_set_rate(q, (int)fx->rate, (int)fx->burst, 0);
		if (fx->limit)
			rtnl_qdisc_tbf_set_limit(q, (int)fx->limit);
		else
			rtnl_qdisc_tbf_set_limit_by_latency(q, (int)(fx->latency_ns / 1000));
	} else {
		/* libnl takes microseconds as int; the scenario's ranges keep them well inside */
		rtnl_netem_set_limit(q, (int)fx->queue_pkts);
		if (fx->delay_ns)
			rtnl_netem_set_delay(q, (int)(fx->delay_ns / 1000));
		if (fx->jitter_ns) {
			rtnl_netem_set_jitter(q, (int)(fx->jitter_ns / 1000));
			if (fx->delay_corr > 0)
				rtnl_netem_set_delay_correlation(q, prob(fx->delay_corr));
			if (fx->dist != FL_DIST_UNIFORM) {
				rc = dist_load(fx->dist, &dist, &ndist, err);
				if (rc)
					goto out;
				rtnl_netem_set_delay_distribution_data(q, dist, ndist);
			}
		}
		if (fx->loss > 0) {
			rtnl_netem_set_loss(q, prob(fx->loss));
			if (fx->loss_corr > 0)
				rtnl_netem_set_loss_correlation(q, prob(fx->loss_corr));
		}
		if (fx->duplicate > 0) {
			rtnl_netem_set_duplicate(q, prob(fx->duplicate));
			if (fx->duplicate_corr > 0)
				rtnl_netem_set_duplicate_correlation(q, prob(fx->duplicate_corr));
		}
		if (fx->corrupt > 0) {
			rtnl_netem_set_corruption_probability(q, prob(fx->corrupt));
			if (fx->corrupt_corr > 0)
				rtnl_netem_set_corruption_correlation(q, prob(fx->corrupt_corr));
		}
		if (fx->reorder > 0) {
			rtnl_netem_set_reorder_probability(q, prob(fx->reorder));
			if (fx->reorder_corr > 0)
				rtnl_netem_set_reorder_correlation(q, prob(fx->reorder_corr));
			rtnl_netem_set_gap(q, fx->gap);
		}
	}
	rc = rtnl_qdisc_build_add_request(q, NLM_F_CREATE | NLM_F_EXCL, &msg);
	rc = rc < 0 ? fl_err_set(err, -EINVAL, "building the %s qdisc: %s", is_tbf(fx) ? "tbf" : "netem",
				 nl_geterror(rc)) :
		      talk(sk, msg, is_tbf(fx) ? "adding the tbf qdisc" : "adding the netem qdisc", err);
	if (rc == -ENOENT && !is_tbf(fx))
		fl_err_hint(err, "this kernel has no sch_netem: use backend: nfqueue (or auto)");
out:
	free(dist);
	nlmsg_free(msg);
	rtnl_qdisc_put(q);
	return rc;
}

/* tcm_info of our filter: priority = the fault's minor, every protocol. */
static uint32_t filter_info(int minor)
{
	return TC_H_MAKE((uint32_t)minor << 16, htons(ETH_P_ALL));
}

/*
 * cls_bpf in classic mode (libnl has no cls_bpf, libbpf's tc API is direct-action on clsact only):
 * the program returns the class. Added before the class exists, so the slot is owned by name
 * from its first moment; until the class is there, matched packets fall to the direct queue.
 */
static int filter_add(struct nl_sock *sk, int ifindex, int minor, int prog_fd, const char *name,
		      struct fl_err *err)
{
	struct tcmsg t = {.tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex, .tcm_handle = 1,
			  .tcm_parent = ROOT_HANDLE, .tcm_info = filter_info(minor)};
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL);
	struct nlattr *opts;
	int rc = -ENOMEM;

	if (!msg || nlmsg_append(msg, &t, sizeof(t), NLMSG_ALIGNTO) < 0 || nla_put_string(msg, TCA_KIND, "bpf") < 0 ||
	    !(opts = nla_nest_start(msg, TCA_OPTIONS)) || nla_put_u32(msg, TCA_BPF_FD, (uint32_t)prog_fd) < 0 ||
	    nla_put_string(msg, TCA_BPF_NAME, name) < 0)
		goto out;
	nla_nest_end(msg, opts);
	rc = talk(sk, msg, "adding the bpf classifier", err);
out:
	if (rc == -ENOMEM)
		fl_err_set(err, rc, "out of memory");
	nlmsg_free(msg);
	return rc;
}

static int del_obj(struct nl_sock *sk, int type, int ifindex, uint32_t handle, uint32_t info, const char *what,
		   struct fl_err *err)
{
	struct tcmsg t = {.tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex, .tcm_handle = handle,
			  .tcm_parent = ROOT_HANDLE, .tcm_info = info};
	struct nl_msg *msg = nlmsg_alloc_simple(type, 0);
	struct fl_err e;
	int rc;

	if (!msg || nlmsg_append(msg, &t, sizeof(t), NLMSG_ALIGNTO) < 0 ||
	    (type == RTM_DELTFILTER && nla_put_string(msg, TCA_KIND, "bpf") < 0)) {
		nlmsg_free(msg);
		return fl_err_set(err, -ENOMEM, "out of memory");
	}
	fl_err_clear(&e);
	rc = talk(sk, msg, what, &e);
	nlmsg_free(msg);
	/* ENOENT/EINVAL: it, or the root that held it, is gone already */
	if (rc && rc != -ENOENT && rc != -EINVAL) {
		*err = e;
		return rc;
	}
	return 0;
}

/*
 * Delete one fault's slot — its filter (only if it carries the fault's name) and its class,
 * which takes the leaf. Idempotent, and never touches a slot of another run that took the same
 * minor after ours was gone.
 */
static int slot_remove(struct nl_sock *sk, int ifindex, int minor, const char *name, struct fl_err *err)
{
	struct iface_view v;
	int rc = view_read(sk, ifindex, &v, err);
	bool mine;

	if (rc)
		return rc;
	if (!v.ours) {
		view_free(&v);
		return 0; /* no root of ours: nothing of this fault can be left */
	}
	/* without its filter, the class is ours only if nobody else has a filter on this root */
	mine = v.slot_filter[minor][0] ? !strcmp(v.slot_filter[minor], name) : !v.foreign_filter;
	if (mine && v.slot_filter[minor][0])
		rc = del_obj(sk, RTM_DELTFILTER, ifindex, 1, filter_info(minor), "deleting the bpf classifier", err);
	if (mine && !rc && v.used_minor[minor])
		rc = del_obj(sk, RTM_DELTCLASS, ifindex, ROOT_HANDLE | (uint32_t)minor, 0,
			     "deleting the fault's htb class", err);
	view_free(&v);
	return rc;
}

static int root_delete(struct nl_sock *sk, int ifindex, struct fl_err *err)
{
	struct tcmsg t = {.tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex, .tcm_handle = ROOT_HANDLE,
			  .tcm_parent = TC_H_ROOT};
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_DELQDISC, 0);
	int rc;

	if (!msg || nlmsg_append(msg, &t, sizeof(t), NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		return fl_err_set(err, -ENOMEM, "out of memory");
	}
	rc = talk(sk, msg, "deleting the htb root qdisc", err);
	nlmsg_free(msg);
	return rc == -ENOENT || rc == -EINVAL ? 0 : rc;
}

/*
 * After a slot is gone: when our root holds no class and no filter any more, the last fault is
 * out: put back what was there (the saved tree, or by deleting ours the kernel's default). A
 * saved copy still present means a restore stopped half way: it resumes. Shared by revert and
 * revert_record, so both decide from the kernel's state, not from memory.
 */
static int root_release(struct nl_sock *sk, int ifindex, const char *saved, struct fl_err *err)
{
	bool have_saved = saved && saved[0] && strcmp(saved, "-") && access(saved, F_OK) == 0;
	struct iface_view v;
	bool ours, in_use;
	int rc = view_read(sk, ifindex, &v, err);

	if (rc)
		return rc;
	ours = v.ours;
	in_use = v.nfilters > 0;
	for (int m = 1; m <= MAX_SLOT; m++)
		in_use |= v.used_minor[m];
	view_free(&v);
	if (ours && in_use)
		return 0;
	if (have_saved)
		return tree_restore(sk, ifindex, saved, err);
	return ours ? root_delete(sk, ifindex, err) : 0;
}

/* ---- the backend ------------------------------------------------------------------------------ */

struct tc_state {
	bool tbf;
	struct fl_netns ns;
	struct nl_sock *sk;
	int ifindex;
	char iface[IF_NAMESIZE];
	int minor;
	char name[160];
	char saved[4200];
	struct net_tc *skel;
	struct fl_net_effect fx;
	bool reverted;
	/* observation */
	struct fl_rtt_probe probe;
	uint64_t matched, bytes, leaf_packets, drops, overlimits, backlog;
	int64_t t_last;
	double rate_obs;
	double delay_in_force_ms;
	bool read_back;
};

static void leaf_read(struct tc_state *st);

/*
 * Drop the classifier and wait (bounded) until the kernel has freed it: a deleted tc filter lets
 * go of its program only after an RCU grace period, and "reverted" should mean gone.
 */
static void classifier_unload(struct net_tc **skel)
{
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);
	bool have_id;

	if (!*skel)
		return;
	have_id = bpf_obj_get_info_by_fd(bpf_program__fd((*skel)->progs.fl_tc_classify), &info, &len) == 0;
	net_tc__destroy(*skel);
	*skel = NULL;
	for (int i = 0; have_id && i < 200; i++) {
		int fd = bpf_prog_get_fd_by_id(info.id);

		if (fd < 0)
			return;
		close(fd);
		usleep(1000);
	}
}

static int try_netem(void *arg, struct fl_err *err)
{
	struct fl_netns self;
	struct nl_sock *sk = NULL;
	struct fl_net_effect fx = {.delay_ns = 1000000, .queue_pkts = 100};
	bool tbf = *(bool *)arg;
	struct net_tc *skel = NULL;
	int rc;

	if (tbf) {
		fx.delay_ns = 0;
		fx.rate = 125000;
		fx.burst = 16384;
		fx.latency_ns = 50000000;
	}
	rc = fl_netns_open("/proc/self/ns/net", &self, err);
	if (!rc)
		rc = fl_net_route_socket(&self, &sk, err);
	/* lo of the scratch netns: index 1 */
	if (!rc)
		rc = root_add(sk, 1, err);
	if (!rc)
		rc = class_add(sk, 1, 1, err);
	if (!rc)
		rc = leaf_add(sk, 1, 1, &fx, err);
	if (!rc) {
		skel = net_tc__open();
		rc = skel ? net_tc__load(skel) : -errno;
		if (rc)
			fl_err_set(err, rc < 0 ? rc : -EINVAL, "loading the BPF classifier: %s", strerror(rc < 0 ? -rc : EINVAL));
	}
	if (!rc)
		rc = filter_add(sk, 1, 1, bpf_program__fd(skel->progs.fl_tc_classify), "faultline-probe", err);
	/* undo it here rather than leave it to the namespace's slow teardown: the probe leaves no program */
	root_delete(sk, 1, NULL);
	classifier_unload(&skel);
	nl_socket_free(sk);
	fl_netns_close(&self);
	return rc;
}

static int probe_kind(bool tbf, struct fl_err *err)
{
	int rc = fl_net_probe_in_scratch_ns(try_netem, &tbf, err);

	if (rc == -EPERM)
		fl_err_hint(err, "tc needs CAP_NET_ADMIN and the classifier CAP_BPF (run as root)");
	return rc;
}

static int netem_probe(struct fl_err *err)
{
	return probe_kind(false, err);
}

static int tbf_probe(struct fl_err *err)
{
	return probe_kind(true, err);
}

static int effect_check(const struct fl_net_req *r, bool tbf, struct fl_err *err)
{
	const struct fl_net_effect *fx = &r->fx;

	if (tbf != is_tbf(fx))
		return fl_err_set(err, -EINVAL, "%s cannot do %s", tbf ? "tbf" : "netem",
				  tbf ? "delay, loss or the like" : "bandwidth limits");
	if (r->match.dir == FL_NET_INGRESS) {
		fl_err_set(err, -EOPNOTSUPP, "the %s backend shapes what an interface sends, not what it "
					     "receives", tbf ? "tbf" : "netem");
		fl_err_hint(err, "match the other direction on the peer's interface (egress), or use "
				 "backend nfqueue for ingress");
		return -EOPNOTSUPP;
	}
	if (r->match.cgroup && !(r->f->target && r->f->target->cgroup_v2[0]))
		return fl_err_set(err, -EINVAL, "match.cgroup needs the target's cgroup v2 (launched targets "
						"get one)");
	if (!tbf && fx->dist != FL_DIST_UNIFORM && fx->jitter_ns) {
		int16_t *d;
		size_t n;
		int rc = dist_load(fx->dist, &d, &n, err);

		free(d);
		if (rc)
			return rc;
	}
	return 0;
}

/* A run id (YYYYMMDDTHHMMSS-PID-XXXX) names its controller's pid: is that us? */
static bool run_is_this_process(const char *run_id)
{
	const char *dash = strchr(run_id, '-');

	return dash && atoi(dash + 1) == (int)getpid();
}

static const char *unreplayable(const struct iface_view *v)
{
	for (int i = 0; i < v->qdiscs.n; i++)
		if (!kind_replayable(kind_of(v->qdiscs.v[i].h)))
			return kind_of(v->qdiscs.v[i].h);
	return NULL;
}

static int tc_check_kind(const struct fl_net_req *r, bool tbf, struct fl_err *err)
{
	struct nl_sock *sk = NULL;
	struct iface_view v;
	const char *bad_kind;
	int rc = effect_check(r, tbf, err);

	if (rc)
		return rc;
	rc = fl_net_route_socket(&r->ns, &sk, err);
	if (!rc)
		rc = view_read(sk, r->ifindex, &v, err);
	nl_socket_free(sk);
	if (rc)
		return rc;
	if (v.ours && !run_is_this_process(v.owner_run)) {
		/* another run's tree (this run's own earlier faults share it: the run id holds our pid) */
		fl_err_set(err, -EBUSY, "%s is already shaped by faultline run %s", r->iface,
			   v.owner_run[0] ? v.owner_run : "(unknown)");
		fl_err_hint(err, "wait for it, or `faultline recover` if that run is dead");
		rc = -EBUSY;
	} else if (!v.ours && !default_root(&v) && (bad_kind = unreplayable(&v))) {
		fl_err_set(err, -EBUSY, "%s has a root qdisc tree with a %s qdisc, which faultline cannot yet "
					"put back exactly", r->iface, bad_kind);
		fl_err_hint(err, "run the drill where the interface has a default or simpler root qdisc, or "
				 "use backend nfqueue");
		rc = -EBUSY;
	} else if (!v.ours && v.nfilters) {
		fl_err_set(err, -EBUSY, "%s has a root qdisc of its own with %d filter(s), which faultline "
					"could not put back exactly", r->iface, v.nfilters);
		fl_err_hint(err, "run the drill where the interface has no tc filters (e.g. in the target's "
				 "netns), or use backend nfqueue");
		rc = -EBUSY;
	}
	view_free(&v);
	return rc;
}

static int netem_check(const struct fl_net_req *r, struct fl_err *err)
{
	return tc_check_kind(r, false, err);
}

static int tbf_check(const struct fl_net_req *r, struct fl_err *err)
{
	return tc_check_kind(r, true, err);
}

static void cidr_mask(const struct fl_cidr *c, __u8 *addr, __u8 *mask)
{
	int n = c->family == AF_INET ? 4 : 16;

	for (int i = 0; i < n; i++) {
		int bits = c->prefix - 8 * i;
		__u8 m = bits >= 8 ? 0xff : bits <= 0 ? 0 : (__u8)(0xff << (8 - bits));

		mask[i] = m;
		addr[i] = c->addr[i] & m;
	}
}

/* How many levels below the cgroup2 root `dir` is: the root directory is inode 1. */
static int cgroup_level(const char *dir, __u32 *level)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s", dir);
	for (*level = 0; *level < 64; (*level)++) {
		char *slash;

		if (stat(path, &st) < 0)
			return -errno;
		if (st.st_ino == 1)
			return 0;
		slash = strrchr(path, '/');
		if (!slash || slash == path)
			return -EINVAL;
		*slash = '\0';
	}
	return -ELOOP;
}

static int classifier_load(struct tc_state *st, const struct fl_net_req *r, struct fl_err *err)
{
	static const __u8 protos[] = {[FL_NET_ANY] = 0, [FL_NET_TCP] = 6, [FL_NET_UDP] = 17, [FL_NET_ICMP] = 1};
	struct fl_tc_match *m;
	struct stat cg;
	int rc;

	st->skel = net_tc__open();
	if (!st->skel)
		return fl_err_set(err, -errno, "opening the BPF classifier: %s", strerror(errno));
	m = (struct fl_tc_match *)&st->skel->rodata->cfg;
	m->classid = ROOT_HANDLE | (uint32_t)st->minor;
	m->family = r->match.family == AF_INET ? 4 : r->match.family == AF_INET6 ? 6 : 0;
	m->proto = protos[r->match.proto];
	if ((m->has_dst = r->match.has_dst))
		cidr_mask(&r->match.dst, m->dst, m->dst_mask);
	if ((m->has_src = r->match.has_src))
		cidr_mask(&r->match.src, m->src, m->src_mask);
	m->dport = r->match.dst_port;
	m->sport = r->match.src_port;
	if (r->match.cgroup) {
		/* a cgroup v2 directory's inode number is its id, as the kernel reports it to BPF */
		if (stat(r->f->target->cgroup_v2, &cg) < 0)
			return fl_err_set(err, -errno, "%s: %s", r->f->target->cgroup_v2, strerror(errno));
		m->cgroup_id = (__u64)cg.st_ino;
		rc = cgroup_level(r->f->target->cgroup_v2, &m->cgroup_level);
		if (rc)
			return fl_err_set(err, rc, "cannot tell the depth of %s in its hierarchy", r->f->target->cgroup_v2);
	}
	rc = net_tc__load(st->skel);
	if (rc)
		return fl_err_set(err, rc, "loading the BPF classifier: %s", strerror(-rc));
	return 0;
}

static int tc_apply(const struct fl_net_req *r, struct fl_journal *j, void **state, struct fl_err *err)
{
	struct tc_state *st = calloc(1, sizeof(*st));
	struct iface_view v;
	bool create, have_view = false;
	int rc;
	int64_t seq;

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->tbf = is_tbf(&r->fx);
	st->fx = r->fx;
	st->ifindex = r->ifindex;
	st->ns.fd = -1;
	snprintf(st->iface, sizeof(st->iface), "%s", r->iface);
	rc = fl_netns_find(r->ns.path, r->ns.dev, r->ns.ino, &st->ns, err);
	if (!rc)
		rc = fl_net_route_socket(&st->ns, &st->sk, err);
	if (!rc)
		rc = fl_net_owned_name(j, r->f, st->name, sizeof(st->name));
	if (rc)
		goto fail;
	{
		char dir[4096];
		const char *slash;

		snprintf(dir, sizeof(dir), "%s", fl_journal_path(j));
		slash = strrchr(dir, '/');
		snprintf(st->saved, sizeof(st->saved), "%.*s/%s.tc-%llu-%d.saved", slash ? (int)(slash - dir) : 1,
			 slash ? dir : ".", fl_journal_run_id(j), (unsigned long long)st->ns.ino, st->ifindex);
	}
	rc = view_read(st->sk, st->ifindex, &v, err);
	if (rc)
		goto fail;
	have_view = true;
	if (v.ours && v.owner_run[0] && strcmp(v.owner_run, fl_journal_run_id(j))) {
		rc = fl_err_set(err, -EBUSY, "%s is shaped by another faultline run (%s)", st->iface, v.owner_run);
		goto fail;
	}
	create = !v.ours;
	for (st->minor = 1; st->minor <= MAX_SLOT && (v.used_minor[st->minor] || v.slot_filter[st->minor][0]);
	     st->minor++)
		;
	if (st->minor > MAX_SLOT) {
		rc = fl_err_set(err, -ENOSPC, "%s already carries %d faults", st->iface, MAX_SLOT);
		goto fail;
	}
	/* a user's tree is saved (and fsync'd) before the journal names it and before it is replaced;
	 * over a default root a copy left by an earlier fault of this run would be stale */
	if (create && !default_root(&v))
		rc = tree_save(&v, st->saved, err);
	else if (create)
		unlink(st->saved);
	view_free(&v);
	have_view = false;
	if (!rc)
		rc = classifier_load(st, r, err);
	if (rc)
		goto fail;
	seq = fl_journal_append(j, r->f, "backend=%s " FL_NETNS_REC_FMT " ifindex=%d dev=%s minor=%d name=%s saved=%s",
				st->tbf ? "tbf" : "netem", FL_NETNS_REC_ARGS(&st->ns), st->ifindex, st->iface,
				st->minor, st->name, st->saved);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		if (create)
			unlink(st->saved);
		goto fail;
	}
	/* its first handshake leaves now, before anything is in place: the baseline */
	if (!st->fx.rate)
		fl_rtt_probe_start(&st->probe, &st->ns, &r->match);
	/* journaled: from here a failure leaves state for revert, which undoes whatever was made */
	*state = st;
	if (create)
		rc = root_add(st->sk, st->ifindex, err);
	/* the named filter first: the slot is ours by name from its first moment */
	if (!rc)
		rc = filter_add(st->sk, st->ifindex, st->minor, bpf_program__fd(st->skel->progs.fl_tc_classify),
				st->name, err);
	if (!rc)
		rc = class_add(st->sk, st->ifindex, st->minor, err);
	if (!rc)
		rc = leaf_add(st->sk, st->ifindex, st->minor, &st->fx, err);
	if (!rc)
		leaf_read(st); /* the first point of the observed rate */
	return rc;
fail:
	if (have_view)
		view_free(&v);
	nl_socket_free(st->sk);
	fl_netns_close(&st->ns);
	net_tc__destroy(st->skel);
	free(st);
	return rc;
}

/* Read the leaf's counters (and what netem really has in force) back from the kernel. */
static void leaf_read(struct tc_state *st)
{
	struct nl_cache *cache = NULL;
	struct rtnl_qdisc *q;

	if (rtnl_qdisc_alloc_cache(st->sk, &cache) < 0)
		return;
	q = rtnl_qdisc_get(cache, st->ifindex, (LEAF_MAJOR + (uint32_t)st->minor) << 16);
	if (q) {
		int64_t now = fl_mono_ns();
		uint64_t bytes = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_BYTES);

		st->leaf_packets = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_PACKETS);
		st->drops = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_DROPS);
		st->overlimits = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_OVERLIMITS);
		st->backlog = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_QLEN);
		/*
		 * The rate the leaf let through between two looks; the fastest such interval is the
		 * limit as the traffic met it (idle intervals say nothing about a limiter).
		 */
		if (st->t_last && now - st->t_last > 100000000 && bytes >= st->bytes) {
			double r = (double)(bytes - st->bytes) * 1e9 / (double)(now - st->t_last);

			if (r > st->rate_obs)
				st->rate_obs = r;
		}
		if (!st->t_last || now - st->t_last > 100000000) {
			st->bytes = bytes;
			st->t_last = now;
		}
		if (!st->tbf) {
			st->delay_in_force_ms = rtnl_netem_get_delay(q) / 1000.0;
			st->read_back = true;
		}
		rtnl_qdisc_put(q);
	}
	nl_cache_free(cache);
	if (st->skel) {
		int ncpu = libbpf_num_possible_cpus();
		struct fl_tc_counters *c = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*c)) : NULL;
		__u32 key = 0;

		if (c && bpf_map__lookup_elem(st->skel->maps.fl_tc_stats, &key, sizeof(key), c,
					      sizeof(*c) * (size_t)ncpu, 0) == 0) {
			st->matched = 0;
			for (int i = 0; i < ncpu; i++)
				st->matched += c[i].packets;
		}
		free(c);
	}
}

static int tc_observe(void *state, struct fl_observation *o)
{
	struct tc_state *st = state;

	if (!st->reverted) {
		leaf_read(st);
		fl_rtt_probe_step(&st->probe, &st->ns);
	}
	fl_obs_text(o, "interface", "%s (minor %d)", st->iface, st->minor);
	fl_obs_num(o, "packets_matched", (double)st->matched, "%llu", (unsigned long long)st->matched);
	fl_obs_num(o, "packets_dropped", (double)st->drops, "%llu", (unsigned long long)st->drops);
	if (st->tbf) {
		fl_obs_num(o, "rate_observed_Bps", st->rate_obs, "%.0f B/s (%.2f Mbit/s), the busiest interval",
			   st->rate_obs, st->rate_obs * 8 / 1e6);
		fl_obs_num(o, "rate_configured_Bps", (double)st->fx.rate, "%llu B/s",
			   (unsigned long long)st->fx.rate);
		fl_obs_num(o, "overlimits", (double)st->overlimits, "%llu", (unsigned long long)st->overlimits);
	} else {
		if (st->read_back)
			fl_obs_num(o, "delay_in_force_ms", st->delay_in_force_ms, "%.3f ms", st->delay_in_force_ms);
		if (st->matched && (st->fx.loss > 0))
			fl_obs_num(o, "loss_observed", (double)st->drops / (double)st->matched, "%.2f%%",
				   100.0 * (double)st->drops / (double)st->matched);
		fl_obs_num(o, "queued_now", (double)st->backlog, "%llu", (unsigned long long)st->backlog);
	}
	fl_rtt_probe_report(&st->probe, o);
	return 0;
}

static int tc_revert(void *state, struct fl_err *err)
{
	struct tc_state *st = state;
	int rc;

	if (st->reverted)
		return 0;
	leaf_read(st); /* the final counters, before the leaf goes */
	rc = slot_remove(st->sk, st->ifindex, st->minor, st->name, err);
	if (!rc)
		rc = root_release(st->sk, st->ifindex, st->saved, err);
	if (rc)
		return rc;
	st->reverted = true;
	fl_rtt_probe_close(&st->probe);
	/* the filter is gone, so is the effect; the kernel frees the program a grace period later */
	net_tc__destroy(st->skel);
	st->skel = NULL;
	return 0;
}

static void tc_release(void *state)
{
	struct tc_state *st = state;

	if (!st)
		return;
	fl_rtt_probe_close(&st->probe);
	net_tc__destroy(st->skel);
	nl_socket_free(st->sk);
	fl_netns_close(&st->ns);
	free(st);
}

static int tc_revert_record(const struct fl_journal_rec *rec, struct fl_err *err)
{
	struct fl_netns ns;
	struct nl_sock *sk = NULL;
	struct rtnl_link *link = NULL;
	char name[160] = "", saved[4200] = "";
	int64_t ifindex, minor;
	int rc;

	if (fl_rec_get_i64(rec, "ifindex", &ifindex) || fl_rec_get_i64(rec, "minor", &minor) ||
	    !fl_rec_get(rec, "name", name, sizeof(name)) || minor < 1 || minor > MAX_SLOT)
		return fl_err_set(err, -EINVAL, "journal record %llu lacks ifindex/minor/name",
				  (unsigned long long)rec->seq);
	fl_rec_get(rec, "saved", saved, sizeof(saved));
	rc = fl_netns_from_record(rec, &ns, err);
	if (rc == -ENOENT) {
		/* the namespace is gone, and with it every qdisc it had */
		fl_err_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	rc = fl_net_route_socket(&ns, &sk, err);
	if (rc)
		goto out;
	/* an interface that is gone took its qdiscs along; any other failure is not "gone" */
	rc = rtnl_link_get_kernel(sk, (int)ifindex, NULL, &link);
	if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) {
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		rc = fl_err_set(err, -EIO, "looking up ifindex %lld: %s", (long long)ifindex, nl_geterror(rc));
		goto out;
	}
	/* ownership is by the filter's name, so a renamed interface is still handled right */
	rc = slot_remove(sk, (int)ifindex, (int)minor, name, err);
	if (!rc)
		rc = root_release(sk, (int)ifindex, saved, err);
out:
	rtnl_link_put(link);
	nl_socket_free(sk);
	fl_netns_close(&ns);
	return rc;
}

/* ---- the sweep: our roots whose run left no journal ------------------------------------------ */

struct sweep_ctx {
	const struct fl_sweep *sw;
	int rc;
};

static int sweep_link(struct nl_sock *sk, const struct fl_netns *ns, struct rtnl_link *link,
		      struct sweep_ctx *c)
{
	int ifindex = rtnl_link_get_ifindex(link);
	struct iface_view v;
	struct fl_err err;
	char what[640];

	fl_err_clear(&err);
	if (view_read(sk, ifindex, &v, &err))
		return 0;
	if (v.ours && v.owner_run[0] && c->sw->dead(c->sw, v.owner_run)) {
		int rc = root_delete(sk, ifindex, &err);

		snprintf(what, sizeof(what), "htb root fa17: on %s in %s (its saved copy of the previous "
					     "root, if any, went with the journal: the default qdisc is back)",
			 rtnl_link_get_name(link), ns->path);
		c->sw->report(c->sw, v.owner_run, what, rc, rc ? err.msg : NULL);
		if (rc)
			c->rc = -EIO;
	}
	view_free(&v);
	return 0;
}

static int sweep_ns(const struct fl_netns *ns, void *arg)
{
	struct sweep_ctx *c = arg;
	struct nl_sock *sk = NULL;
	struct nl_cache *links = NULL;

	if (fl_net_route_socket(ns, &sk, NULL))
		return 0;
	if (rtnl_link_alloc_cache(sk, AF_UNSPEC, &links) == 0) {
		for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o))
			sweep_link(sk, ns, (struct rtnl_link *)o, c);
		nl_cache_free(links);
	}
	nl_socket_free(sk);
	return 0;
}

static int tc_sweep(const struct fl_sweep *sw)
{
	struct sweep_ctx c = {.sw = sw};

	fl_netns_each(sweep_ns, &c);
	return c.rc;
}

const struct fl_net_backend fl_net_backend_netem = {
	.name = "netem",
	.probe = netem_probe,
	.check = netem_check,
	.apply = tc_apply,
	.observe = tc_observe,
	.revert = tc_revert,
	.release = tc_release,
	.revert_record = tc_revert_record,
	.sweep = tc_sweep,
};

/* The same tree with a tbf leaf; its own probe, since a kernel may have one qdisc and not the other. */
const struct fl_net_backend fl_net_backend_tbf = {
	.name = "tbf",
	.probe = tbf_probe,
	.check = tbf_check,
	.apply = tc_apply,
	.observe = tc_observe,
	.revert = tc_revert,
	.release = tc_release,
	.revert_record = tc_revert_record,
	.sweep = NULL, /* the netem backend's sweep covers both */
};
