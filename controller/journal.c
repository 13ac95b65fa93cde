/* Journal files: one per run, append-only text lines with a CRC each, fsync'd before the side effect they describe. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "failpoint.h"

/*
 * Format (one line each, so a human can read it at 3 a.m.):
 *   #faultline-journal v1 run=ID pid=PID started=UNIX scenario=NAME
 *   A SEQ FAULT INJECTOR k=v k=v ... #CRC      a side effect about to be made
 *   R SEQ #CRC                                 that effect was reverted
 * CRC is crc32 of the line before " #". A line without its newline or with a
 * bad CRC is torn (the writer died mid-write): it and anything after it are
 * ignored and counted.
 */

struct pending {
	uint64_t seq;
	char fault[64];
	bool reverted;
};

struct fl_journal {
	int fd;
	char path[4096];
	char run_id[64];
	uint64_t next_seq;
	struct pending *recs;
	int n, cap;
};

static uint32_t crc32_of(const char *s, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		c ^= (unsigned char)s[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
	}
	return ~c;
}

/* Write one line with its CRC and fsync; the journal is only useful if it is on disk first. */
static int write_line(int fd, const char *body)
{
	char line[FL_REC_DATA + 256];
	int len = snprintf(line, sizeof(line), "%s #%08x\n", body, crc32_of(body, strlen(body)));
	ssize_t off = 0;

	if (len < 0 || (size_t)len >= sizeof(line))
		return -E2BIG;
	while (off < len) {
		ssize_t w = write(fd, line + off, (size_t)(len - off));

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += w;
	}
	if (fdatasync(fd) < 0)
		return -errno;
	return 0;
}

static bool word_ok(const char *s)
{
	return s && *s && !strpbrk(s, " \t\n#");
}

int fl_journal_open(const char *dir, const char *run_id, const char *scenario,
		    struct fl_journal **out, struct fl_err *err)
{
	struct fl_journal *j = NULL;
	char head[512];
	int rc, dfd = -1;

	*out = NULL;
	if (!word_ok(run_id) || strchr(run_id, '/'))
		return fl_err_set(err, -EINVAL, "bad run id '%s'", run_id);
	/* records name files in it (saved qdisc trees) as blank-free values */
	if (!word_ok(dir)) {
		fl_err_set(err, -EINVAL, "state dir '%s' holds a blank or '#'", dir);
		fl_err_hint(err, "choose a --state-dir without blanks");
		return -EINVAL;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fl_err_set(err, -errno, "cannot create state dir %s: %s", dir, strerror(errno));
	j = calloc(1, sizeof(*j));
	if (!j)
		return fl_err_set(err, -ENOMEM, "out of memory");
	j->next_seq = 1;
	snprintf(j->run_id, sizeof(j->run_id), "%s", run_id);
	snprintf(j->path, sizeof(j->path), "%s/%s.journal", dir, run_id);
	j->fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		rc = fl_err_set(err, -errno, "cannot create journal %s: %s", j->path, strerror(errno));
		goto fail;
	}
	if (flock(j->fd, LOCK_EX | LOCK_NB) < 0) {
		rc = fl_err_set(err, -errno, "cannot lock journal %s: %s", j->path, strerror(errno));
		goto fail;
	}
	snprintf(head, sizeof(head), "#faultline-journal v1 run=%s pid=%d started=%lld scenario=%s", run_id,
		 (int)getpid(), (long long)time(NULL), word_ok(scenario) ? scenario : "-");
	rc = write_line(j->fd, head);
	if (rc) {
		fl_err_set(err, rc, "cannot write journal %s: %s", j->path, strerror(-rc));
		goto fail;
	}
	/* the file's directory entry must be durable too, or a crash could lose the whole journal */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	*out = j;
	return 0;
fail:
	if (j->fd >= 0) {
		close(j->fd);
		unlink(j->path);
	}
	free(j);
	return rc;
}

int64_t fl_journal_append(struct fl_journal *j, const struct fl_fault *f, const char *fmt, ...)
{
	char data[FL_REC_DATA], body[FL_REC_DATA + 160];
	va_list ap;
	int rc;

	if (!j)
		return -EBADF;
	va_start(ap, fmt);
	rc = vsnprintf(data, sizeof(data), fmt, ap);
	va_end(ap);
	if (rc < 0 || (size_t)rc >= sizeof(data))
		return -E2BIG;
	if (strpbrk(data, "\n#"))
		return -EINVAL;
	if (!word_ok(f->name) || !word_ok(f->inj->type))
		return -EINVAL;
	if (j->n == j->cap) {
		int ncap = j->cap ? 2 * j->cap : 16;
		struct pending *v = realloc(j->recs, (size_t)ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		j->recs = v;
		j->cap = ncap;
	}
	snprintf(body, sizeof(body), "A %llu %s %s %s", (unsigned long long)j->next_seq, f->name,
		 f->inj->type, data);
	rc = write_line(j->fd, body);
	if (rc)
		return rc;
	j->recs[j->n].seq = j->next_seq;
	snprintf(j->recs[j->n].fault, sizeof(j->recs[j->n].fault), "%s", f->name);
	j->recs[j->n].reverted = false;
	j->n++;
	fl_failpoint_kill("after-journal", f->name);
	return (int64_t)j->next_seq++;
}

int fl_journal_mark_fault_reverted(struct fl_journal *j, const char *name)
{
	char body[64];

	if (!j)
		return -EBADF;
	for (int i = 0; i < j->n; i++) {
		int rc;

		if (j->recs[i].reverted || strcmp(j->recs[i].fault, name))
			continue;
		snprintf(body, sizeof(body), "R %llu", (unsigned long long)j->recs[i].seq);
		rc = write_line(j->fd, body);
		if (rc)
			return rc;
		j->recs[i].reverted = true;
	}
	return 0;
}

int fl_journal_pending(const struct fl_journal *j)
{
	int n = 0;

	for (int i = 0; j && i < j->n; i++)
		n += !j->recs[i].reverted;
	return n;
}

const char *fl_journal_path(const struct fl_journal *j)
{
	return j ? j->path : "";
}

const char *fl_journal_run_id(const struct fl_journal *j)
{
	return j ? j->run_id : "";
}

void fl_journal_close(struct fl_journal *j, bool remove_when_clean)
{
	if (!j)
		return;
	if (remove_when_clean && fl_journal_pending(j) == 0)
		unlink(j->path);
	close(j->fd);
	free(j->recs);
	free(j);
}

/* Check and strip " #CRC"; returns false for a torn or damaged line. */
static bool line_ok(char *line)
{
	char *hash = strrchr(line, '#');
	unsigned int crc;
	char *end;

	if (!hash || hash == line || hash[-1] != ' ')
		return false;
	crc = (unsigned int)strtoul(hash + 1, &end, 16);
	if (end != hash + 9 || *end)
		return false;
	hash[-1] = '\0';
	return crc32_of(line, strlen(line)) == crc;
}

static const char *head_get(const char *head, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);

	for (const char *p = head; (p = strstr(p, key)); p += kl) {
		if ((p == head || p[-1] == ' ') && p[kl] == '=') {
			size_t vl = strcspn(p + kl + 1, " ");

			if (vl >= len)
				vl = len - 1;
			memcpy(buf, p + kl + 1, vl);
			buf[vl] = '\0';
			return buf;
		}
	}
	return NULL;
}

int fl_journal_read(const char *path, struct fl_journal_info *info, struct fl_err *err)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0, cap_recs = 0;
	bool damaged = false;
	char v[128];

	memset(info, 0, sizeof(*info));
	snprintf(info->path, sizeof(info->path), "%s", path);
	f = fopen(path, "re");
	if (!f)
		return fl_err_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	/* a live owner holds LOCK_EX for its whole run */
	if (flock(fileno(f), LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
		info->owner_alive = true;
	else
		flock(fileno(f), LOCK_UN);
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (damaged || len == 0 || line[len - 1] != '\n') {
			info->torn++;
			continue;
		}
		line[len - 1] = '\0';
		if (!line_ok(line)) {
			info->torn++;
			damaged = true; /* nothing after a damaged line is trusted */
			continue;
		}
		if (lineno == 1) {
			if (strncmp(line, "#faultline-journal v1 ", 22)) {
				rc = fl_err_set(err, -EINVAL, "%s is not a faultline journal", path);
				goto out;
			}
			if (head_get(line, "run", v, sizeof(v)))
				snprintf(info->run_id, sizeof(info->run_id), "%.63s", v);
			if (head_get(line, "scenario", v, sizeof(v)))
				snprintf(info->scenario, sizeof(info->scenario), "%.95s", v);
			if (head_get(line, "pid", v, sizeof(v)))
				info->owner_pid = (pid_t)atoi(v);
			if (head_get(line, "started", v, sizeof(v)))
				info->started = atoll(v);
			continue;
		}
		if (line[0] == 'A' && line[1] == ' ') {
			struct fl_journal_rec *r;
			unsigned long long seq;
			int off = 0;

			if (info->nrecs == cap_recs) {
				int ncap = cap_recs ? 2 * cap_recs : 16;
				struct fl_journal_rec *nv = realloc(info->recs, (size_t)ncap * sizeof(*nv));

				if (!nv) {
					rc = fl_err_set(err, -ENOMEM, "out of memory");
					goto out;
				}
				info->recs = nv;
				cap_recs = ncap;
			}
			r = &info->recs[info->nrecs];
			memset(r, 0, sizeof(*r));
			if (sscanf(line, "A %llu %63s %47s %n", &seq, r->fault, r->injector, &off) < 3 || !off) {
				info->torn++;
				continue;
			}
			r->seq = seq;
			snprintf(r->data, sizeof(r->data), "%s", line + off);
			info->nrecs++;
		} else if (line[0] == 'R' && line[1] == ' ') {
			unsigned long long seq = strtoull(line + 2, NULL, 10);

			for (int i = 0; i < info->nrecs; i++)
				if (info->recs[i].seq == seq)
					info->recs[i].reverted = true;
		} else {
			info->torn++;
		}
	}
	if (lineno == 0)
		rc = fl_err_set(err, -EINVAL, "%s is empty", path);
out:
	free(line);
	fclose(f);
	return rc;
}

void fl_journal_info_free(struct fl_journal_info *info)
{
	if (!info)
		return;
	free(info->recs);
	info->recs = NULL;
	info->nrecs = 0;
}

int fl_journal_mark_reverted_path(const char *path, uint64_t seq, struct fl_err *err)
{
	char body[64];
	int fd, rc;

	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return fl_err_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	snprintf(body, sizeof(body), "R %llu", (unsigned long long)seq);
	rc = write_line(fd, body);
	close(fd);
	if (rc)
		return fl_err_set(err, rc, "cannot write %s: %s", path, strerror(-rc));
	return 0;
}

const char *fl_rec_get(const struct fl_journal_rec *r, const char *key, char *buf, size_t len)
{
	return head_get(r->data, key, buf, len);
}

int fl_rec_get_i64(const struct fl_journal_rec *r, const char *key, int64_t *out)
{
	char buf[64], *end;

	if (!fl_rec_get(r, key, buf, sizeof(buf)))
		return -ENOENT;
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return (*end || errno || end == buf) ? -EINVAL : 0;
}

int fl_rec_get_u64(const struct fl_journal_rec *r, const char *key, uint64_t *out)
{
	char buf[64], *end;

	if (!fl_rec_get(r, key, buf, sizeof(buf)))
		return -ENOENT;
	errno = 0;
	*out = strtoull(buf, &end, 10);
	return (*end || errno || end == buf) ? -EINVAL : 0;
}
