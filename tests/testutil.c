/*
 * testutil.c — throwaway tokens and real kmsd processes for tests.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "tests/testutil.h"

const char *
tu_bin(const char *name)
{
	static __thread char path[PATH_MAX];
	const char *dir = getenv("KMS_BIN_DIR");

	if (dir == NULL) {
		dir = "bin";
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static char *
read_all(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	if (buf == NULL) {
		return NULL;
	}
	for (;;) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

char *
tu_trimnl(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
		s[--n] = '\0';
	}
	return s;
}

int
tu_run(const char *cmd, char **out, char **err)
{
	char ofile[] = "/tmp/kmstu-out.XXXXXX", efile[] = "/tmp/kmstu-err.XXXXXX";
	int ofd = mkstemp(ofile), efd = mkstemp(efile), st;
	pid_t pid;

	if (ofd < 0 || efd < 0) {
		return -1;
	}
	if ((pid = fork()) == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	lseek(ofd, 0, SEEK_SET);
	lseek(efd, 0, SEEK_SET);
	if (out != NULL) {
		*out = read_all(ofd);
	}
	if (err != NULL) {
		*err = read_all(efd);
	}
	close(ofd);
	close(efd);
	unlink(ofile);
	unlink(efile);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
tu_env_init(struct tu_env *e, const char *extra_conf)
{
	char cmd[1024], *out = NULL, *err = NULL;
	const char *mod = getenv("KMS_TEST_MODULE");
	FILE *f;
	int r;

	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/kmstest.XXXXXX");
	if (mkdtemp(e->dir) == NULL) {
		return -1;
	}
	snprintf(e->conf, sizeof(e->conf), "%s/kmsd.conf", e->dir);
	snprintf(e->endpoint, sizeof(e->endpoint), "ipc://%s/kmsd.sock",
	    e->dir);
	snprintf(e->module, sizeof(e->module), "%s",
	    mod != NULL ? mod : "/usr/lib/softhsm/libsofthsm2.so");
	snprintf(cmd, sizeof(cmd), "KMS_BIN_DIR=%s scripts/hsm-init %s",
	    getenv("KMS_BIN_DIR") ? getenv("KMS_BIN_DIR") : "bin", e->dir);
	if ((r = tu_run(cmd, &out, &err)) != 0) {
		fprintf(stderr, "hsm-init failed (%d): %s%s\n", r,
		    out ? out : "", err ? err : "");
		free(out);
		free(err);
		return -1;
	}
	free(out);
	free(err);
	if ((f = fopen(e->conf, "w")) == NULL) {
		return -1;
	}
	fprintf(f, "state_dir = %s\npkcs11_module = %s\nworkers = 4\n",
	    e->dir, e->module);
	if (extra_conf != NULL) {
		fputs(extra_conf, f);
		fputc('\n', f);
	}
	fclose(f);
	/* Whatever the umask: kmsd trusts no config others may write. */
	return chmod(e->conf, 0644) == 0 ? 0 : -1;
}

int
tu_kmsd_start(struct tu_env *e)
{
	char sock[300], log[300];
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	pid_t pid;
	int i, fd;

	snprintf(sock, sizeof(sock), "%s/kmsd.sock", e->dir);
	snprintf(log, sizeof(log), "%s/kmsd.log", e->dir);
	unlink(sock);
	if ((pid = fork()) < 0) {
		return -1;
	}
	if (pid == 0) {
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(tu_bin("kmsd"), "kmsd", "-c", e->conf, (char *)NULL);
		_exit(127);
	}
	e->kmsd = pid;
	/* kmsd creates the socket once it is ready to serve. */
	for (i = 0; i < 1500; i++) {
		int st;
		if (access(sock, F_OK) == 0) {
			return 0;
		}
		if (waitpid(pid, &st, WNOHANG) == pid) {
			e->kmsd = 0;
			fprintf(stderr, "kmsd exited early; see %s\n", log);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return -1;
}

int
tu_kmsd_stop(struct tu_env *e)
{
	int st = 0;

	if (e->kmsd <= 0) {
		return 0;
	}
	kill(e->kmsd, SIGTERM);
	while (waitpid(e->kmsd, &st, 0) < 0 && errno == EINTR) {
	}
	e->kmsd = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
tu_env_destroy(struct tu_env *e)
{
	char cmd[400];
	int st = tu_kmsd_stop(e);

	if (st != 0) {
		fprintf(stderr, "kmsd exited with status %d; its log:\n", st);
		snprintf(cmd, sizeof(cmd), "cat '%s/kmsd.log' >&2", e->dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "(no log)\n");
		}
	}
	if (e->dir[0] != '\0' && getenv("KMS_KEEP_TEST_DIRS") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", e->dir);
		}
	}
	return st;
}

double
tu_now_s(void)
{
	return clock_mono_s();
}

int
tu_open_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (pid == 0) {
		snprintf(path, sizeof(path), "/proc/self/fd");
	} else {
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	}
	if ((d = opendir(path)) == NULL) {
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		n += de->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

int
tu_log_says(const struct tu_env *e, const char *what)
{
	return tu_log_count(e, what) > 0;
}

int
tu_log_count(const struct tu_env *e, const char *what)
{
	char path[300], line[1024];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/kmsd.log", e->dir);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		n += strstr(line, what) != NULL;
	}
	fclose(f);
	return n;
}

int
tu_audit_count(const struct tu_env *e, const char *a, const char *b)
{
	char dir[300], path[600], *line = NULL;
	struct dirent *de;
	size_t cap = 0;
	int n = 0;
	DIR *d;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/audit", e->dir);
	if ((d = opendir(dir)) == NULL) {
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "kmsd-audit-", 11) != 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((f = fopen(path, "r")) == NULL) {
			continue;
		}
		while (getline(&line, &cap, f) > 0) {
			n += strstr(line, a) != NULL && (b == NULL ||
			    strstr(line, b) != NULL);
		}
		fclose(f);
	}
	closedir(d);
	free(line);
	return n;
}

int
tu_audit_verify(const struct tu_env *e)
{
	char cmd[1024], *out = NULL, *err = NULL;
	int r;

	snprintf(cmd, sizeof(cmd), "%s audit verify "
	    "%s/audit/kmsd-audit-*.jsonl", tu_bin("kmsctl"), e->dir);
	if ((r = tu_run(cmd, &out, &err)) != 0) {
		fprintf(stderr, "# kmsctl audit verify: %s%s\n", out ? out : "",
		    err ? err : "");
	}
	free(out);
	free(err);
	return r;
}

void
tu_must(int r, const kms_error_info *ei, const char *what)
{
	if (r != 0) {
		fail_msg("%s: %d %s: %s", what, r, ei->name, ei->message);
	}
}

void
tu_new_key(kms_client *c, const char *desc, char id[KMS_KEY_ID_LEN + 1],
    char *arn)
{
	kms_create_key_req req = { 0 };
	kms_key_metadata m;
	kms_error_info ei;

	req.description = desc;
	tu_must(kms_create_key(c, &req, &m, &ei), &ei, "CreateKey");
	snprintf(id, KMS_KEY_ID_LEN + 1, "%s", m.key_id);
	if (arn != NULL) {
		snprintf(arn, KMS_ARN_MAX, "%s", m.arn);
	}
	kms_key_metadata_free(&m);
}
