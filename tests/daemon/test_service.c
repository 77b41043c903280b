/*
 * test_service.c — kmsd as a systemd service: it tells the service manager
 * when it is ready, reloading and stopping (the notify protocol, read here
 * from a datagram socket as systemd reads it), SIGHUP re-reads the log
 * settings, and the unit shipped in dist/ passes systemd's own checks.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

/* Wait up to ms for a notification holding what; 1 when it came. */
static int
notified(int fd, const char *what, int ms)
{
	char buf[512];
	double end = tu_now_s() + ms / 1000.0;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int left = (int)((end - tu_now_s()) * 1000);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) <= 0) {
			return 0;
		}
		if ((n = recv(fd, buf, sizeof(buf) - 1, 0)) <= 0) {
			continue;
		}
		buf[n] = '\0';
		if (strstr(buf, what) != NULL) {
			return 1;
		}
	}
}

static void
test_kmsd_notifies_ready_reloading_and_stopping(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct tu_env e;
	char path[] = "/tmp/kms-notify-XXXXXX", cmd[1024];
	int fd;

	(void)state;
	assert_non_null(mkdtemp(path));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", path);
	assert_true((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	unsetenv("NOTIFY_SOCKET");
	assert_true(notified(fd, "READY=1", 10000));

	/* SIGHUP: the log level is read again (debug here), the rest kept. */
	snprintf(cmd, sizeof(cmd), "echo 'log_level = debug' >> %s", e.conf);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	assert_int_equal(kill(e.kmsd, SIGHUP), 0);
	assert_true(notified(fd, "RELOADING=1", 10000));
	assert_true(notified(fd, "READY=1", 10000));
	assert_true(tu_log_says(&e, "read again (log_level, log_syslog)"));

	/* A file that no longer parses is refused; kmsd keeps serving. */
	snprintf(cmd, sizeof(cmd), "echo 'log_level = loud' >> %s", e.conf);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	assert_int_equal(kill(e.kmsd, SIGHUP), 0);
	assert_true(notified(fd, "READY=1", 10000));
	assert_true(tu_log_says(&e, "keeping the settings in force"));
	snprintf(cmd, sizeof(cmd), "KMS_ENDPOINT=%s %s generate-random "
	    "--number-of-bytes 8 >/dev/null", e.endpoint, tu_bin("kmsctl"));
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);

	assert_int_equal(kill(e.kmsd, SIGTERM), 0);
	assert_true(notified(fd, "STOPPING=1", 10000));
	assert_int_equal(tu_env_destroy(&e), 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", path);
	assert_int_equal(system(cmd), 0);
}

/* The unit as `make install` writes it, pointed at this build. */
static int
write_unit(const char *dir)
{
	char cmd[2048], cwd[1024];

	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/kmsd && cp scripts/hsm-init "
	    "%s/kmsd/ && sed -e 's|@BINDIR@|%s/%s|g' -e 's|@LIBEXECDIR@|%s|g' "
	    "-e 's|@SYSCONFDIR@|/etc|g' dist/kmsd.service.in > "
	    "%s/kmsd.service", dir, dir, cwd,
	    getenv("KMS_BIN_DIR") ? getenv("KMS_BIN_DIR") : "bin", dir, dir);
	return tu_run(cmd, NULL, NULL);
}

static void
test_unit_verifies_and_rates_at_most_2(void **state)
{
	char dir[] = "/tmp/kms-unit-XXXXXX", cmd[1024], *out = NULL;
	double exposure = 99;
	char *p;

	(void)state;
	if (tu_run("command -v systemd-analyze", NULL, NULL) != 0) {
		skip();		/* says "skipped": no systemd-analyze here */
	}
	assert_non_null(mkdtemp(dir));
	assert_int_equal(write_unit(dir), 0);
	snprintf(cmd, sizeof(cmd), "systemd-analyze verify --man=no "
	    "%s/kmsd.service 2>&1", dir);
	if (tu_run(cmd, &out, NULL) != 0) {
		fprintf(stderr, "%s", out);
		fail_msg("systemd-analyze verify failed");
	}
	free(out);
	snprintf(cmd, sizeof(cmd), "systemd-analyze security --offline=yes "
	    "%s/kmsd.service 2>&1 | grep 'Overall exposure level'", dir);
	assert_int_equal(tu_run(cmd, &out, NULL), 0);
	assert_non_null(p = strstr(out, "kmsd.service: "));
	exposure = strtod(p + strlen("kmsd.service: "), NULL);
	fprintf(stderr, "exposure %.1f\n", exposure);
	assert_true(exposure <= 2.0);
	free(out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kmsd_notifies_ready_reloading_and_stopping),
		cmocka_unit_test(test_unit_verifies_and_rates_at_most_2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
