/*
 * test_client.c — libkmsclient without a daemon: the exported symbol list,
 * endpoint discovery, transport failures that must not hang, argument
 * checks, a raw peer that breaks the wire protocol, and reply parsing
 * against a tiny in-test nng rep0 server (so the library's own req0 is
 * checked against nng's) that answers canned JSON (success, error,
 * malformed, oversized, deep, Batch).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "common/json.h"
#include "kms.h"
#include "tests/testutil.h"

/* ------------------------------------------------ the canned server */

enum srv_mode {
	SRV_REPLY,	/* answer with srv.reply */
	SRV_SILENT,	/* receive, never answer */
	SRV_DROP,	/* receive, then drop the connection */
};

static struct {
	pthread_mutex_t mu;
	pthread_t thread;
	int stop;
	enum srv_mode mode;
	char *reply;		/* malloc'd canned reply */
	size_t reply_len;
	char *last_req;		/* malloc'd copy of the last request */
	int nreq;
	char dir[64];
	char url[128];
} srv = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void
srv_set(enum srv_mode mode, const char *reply, size_t len)
{
	pthread_mutex_lock(&srv.mu);
	free(srv.reply);
	srv.reply = malloc(len + 1);
	memcpy(srv.reply, reply, len);
	srv.reply_len = len;
	srv.mode = mode;
	pthread_mutex_unlock(&srv.mu);
}

static void
srv_reply(const char *reply)
{
	srv_set(SRV_REPLY, reply, strlen(reply));
}

static int
srv_listen(nng_socket *s)
{
	int rv;

	if ((rv = nng_rep0_open(s)) != 0) {
		return rv;
	}
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 50);
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, 0);
	return nng_listen(*s, srv.url, NULL, 0);
}

static void *
srv_main(void *arg)
{
	nng_socket s;
	nng_msg *m;

	(void)arg;
	if (srv_listen(&s) != 0) {
		return NULL;
	}
	for (;;) {
		enum srv_mode mode;
		pthread_mutex_lock(&srv.mu);
		if (srv.stop) {
			pthread_mutex_unlock(&srv.mu);
			break;
		}
		pthread_mutex_unlock(&srv.mu);
		if (nng_recvmsg(s, &m, 0) != 0) {
			continue;
		}
		pthread_mutex_lock(&srv.mu);
		free(srv.last_req);
		srv.last_req = strndup(nng_msg_body(m), nng_msg_len(m));
		srv.nreq++;
		mode = srv.mode;
		if (mode == SRV_REPLY) {
			nng_msg_clear(m);
			nng_msg_append(m, srv.reply, srv.reply_len);
		}
		pthread_mutex_unlock(&srv.mu);
		if (mode == SRV_REPLY) {
			if (nng_sendmsg(s, m, 0) != 0) {
				nng_msg_free(m);
			}
		} else if (mode == SRV_SILENT) {
			nng_msg_free(m);
		} else {
			/* Drop the connection and listen again. */
			nng_msg_free(m);
			nng_close(s);
			if (srv_listen(&s) != 0) {
				return NULL;
			}
		}
	}
	nng_close(s);
	return NULL;
}

/* The last request the server received, parsed (caller decrefs). */
static json_t *
srv_last_request(void)
{
	json_t *j;

	pthread_mutex_lock(&srv.mu);
	j = srv.last_req ? json_loads(srv.last_req, 0, NULL) : NULL;
	pthread_mutex_unlock(&srv.mu);
	return j;
}

static int
srv_count(void)
{
	int n;

	pthread_mutex_lock(&srv.mu);
	n = srv.nreq;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

static kms_client *cl;

static int
setup(void **state)
{
	snprintf(srv.dir, sizeof(srv.dir), "/tmp/kmsclient-test-XXXXXX");
	if (mkdtemp(srv.dir) == NULL) {
		return -1;
	}
	snprintf(srv.url, sizeof(srv.url), "ipc://%s/s.sock", srv.dir);
	srv_reply("{}");
	if (pthread_create(&srv.thread, NULL, srv_main, NULL) != 0) {
		return -1;
	}
	if (kms_client_open(&cl, srv.url) != 0) {
		return -1;
	}
	kms_client_set_timeout(cl, 5000);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	struct timespec ts;

	kms_client_close(cl);
	pthread_mutex_lock(&srv.mu);
	srv.stop = 1;
	pthread_mutex_unlock(&srv.mu);
	/* The reference server is nng 1.5.2's rep0, whose nng_close can
	 * deadlock (fixed in nng 1.8; the reason kmsd no longer uses it):
	 * wait a bounded time, and leave a stuck server to process exit. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	if (pthread_timedjoin_np(srv.thread, NULL, &ts) != 0) {
		fprintf(stderr, "test_client: nng's rep0 server stuck in "
		    "nng_close (nng 1.5.2); left to exit\n");
	} else {
		free(srv.reply);
		free(srv.last_req);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", srv.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------ symbols, endpoint */

static void
test_library_exports_only_kms_symbols(void **state)
{
	const char *lib = getenv("LIB") ? getenv("LIB") : "lib";
	char cmd[512], line[512];
	int nkms = 0, bad = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "nm -D --defined-only %s/libkmsclient.so",
	    lib);
	assert_non_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p) != NULL) {
		char addr[64], type[8], name[256];
		if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3) {
			continue;
		}
		/* Text, data and BSS symbols are the library's interface. */
		if (strchr("TWDBRVi", type[0]) == NULL) {
			continue;
		}
		if (strncmp(name, "kms_", 4) == 0) {
			nkms++;
		} else {
			fprintf(stderr, "exported: %s %s\n", type, name);
			bad++;
		}
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(bad, 0);
	assert_true(nkms >= 30);	/* and the API is there */
}

/* The static archive too: an application linking it beside other
 * libraries sees only kms_* from it. */
static void
test_archive_defines_only_kms_symbols(void **state)
{
	const char *lib = getenv("LIB") ? getenv("LIB") : "lib";
	char cmd[512], line[512];
	int nkms = 0, bad = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "nm -g --defined-only %s/libkmsclient.a",
	    lib);
	assert_non_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p) != NULL) {
		char addr[64], type[8], name[256];
		if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3) {
			continue;
		}
		if (strncmp(name, "kms_", 4) == 0) {
			nkms++;
		} else {
			fprintf(stderr, "defined globally: %s %s\n", type,
			    name);
			bad++;
		}
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(bad, 0);
	assert_true(nkms >= 30);
}

/* An application linking the archive and libuuid gets libuuid's
 * blob_uuid_parse, not one of ours (the archive once defined its own, with
 * another signature, and the linker took it without a word). */
static void
test_archive_beside_libuuid_keeps_libuuids_uuid_parse(void **state)
{
	const char *lib = getenv("LIB") ? getenv("LIB") : "lib";
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	char dir[] = "/tmp/kms-uuid-XXXXXX", cmd[2048], *out = NULL;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "%s/app.c", dir);
	assert_non_null(f = fopen(cmd, "w"));
	fputs("#include <stdio.h>\n#include <uuid/uuid.h>\n"
	    "#include <kms.h>\n"
	    "int main(void) {\n"
	    "\tuuid_t u;\n"
	    "\tif (uuid_" "parse(\"00112233-4455-6677-8899-aabbccddeeff\", u)"
	    " != 0) return 1;\n"
	    "\tif (u[0] != 0x00 || u[1] != 0x11 || u[15] != 0xff) return 2;\n"
	    "\tprintf(\"%s\\n\", kms_error_name(KMS_ENOTFOUND));\n"
	    "\treturn 0;\n}\n", f);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "cc %s -Iinclude -o %s/app %s/app.c "
	    "%s/libkmsclient.a -luuid $(pkg-config --libs libsodium jansson "
	    "libcrypto) -lpthread -ldl && %s/app",
	    strstr(build, "asan") != NULL ?
	    "-fsanitize=address,undefined" : "", dir, dir, lib, dir);
	assert_int_equal(tu_run(cmd, &out, NULL), 0);
	assert_string_equal(tu_trimnl(out), "NotFoundException");
	free(out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_default_endpoint_prefers_KMS_ENDPOINT(void **state)
{
	char buf[256], small[8];

	setenv("KMS_ENDPOINT", "ipc:///run/kmsd/kmsd.sock", 1);
	assert_int_equal(kms_default_endpoint(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ipc:///run/kmsd/kmsd.sock");
	assert_int_equal(kms_default_endpoint(small, sizeof(small)),
	    KMS_EINVAL);
	assert_int_equal(kms_default_endpoint(NULL, 10), KMS_EINVAL);
	unsetenv("KMS_ENDPOINT");
}

static void
test_default_endpoint_finds_var_socket_upwards(void **state)
{
	char old[1024], root[1024], want[1200], buf[1200], path[1200];
	FILE *f;

	unsetenv("KMS_ENDPOINT");
	assert_non_null(getcwd(old, sizeof(old)));
	snprintf(path, sizeof(path), "%s/proj", srv.dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chdir(path), 0);
	assert_non_null(getcwd(root, sizeof(root)));
	assert_int_equal(mkdir("var", 0700), 0);
	assert_int_equal(mkdir("src", 0700), 0);
	assert_int_equal(mkdir("src/deep", 0700), 0);

	/* Not there yet: the current directory's var/kmsd.sock. */
	assert_int_equal(chdir("src/deep"), 0);
	assert_int_equal(kms_default_endpoint(buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "ipc://%s/src/deep/var/kmsd.sock", root);
	assert_string_equal(buf, want);

	/* The nearest ancestor holding var/kmsd.sock. */
	snprintf(path, sizeof(path), "%s/var/kmsd.sock", root);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	assert_int_equal(kms_default_endpoint(buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "ipc://%s/var/kmsd.sock", root);
	assert_string_equal(buf, want);
	assert_int_equal(chdir(old), 0);
}

/* ------------------------------------------------ transport failures */

static void
test_absent_daemon_fails_fast_without_hanging(void **state)
{
	kms_client *c;
	kms_secret s;
	kms_error_info ei;
	char url[256];
	double t0;
	int r;

	snprintf(url, sizeof(url), "ipc://%s/nobody-here.sock", srv.dir);
	/* Opening succeeds: the daemon may be restarting. */
	assert_int_equal(kms_client_open(&c, url), 0);
	kms_client_set_timeout(c, 300);
	t0 = tu_now_s();
	r = kms_generate_random(c, 16, &s, &ei);
	assert_true(r == KMS_ETRANSPORT || r == KMS_ETIMEDOUT);
	assert_int_equal(ei.code, r);
	assert_string_equal(ei.name, kms_error_name(r));
	assert_true(tu_now_s() - t0 < 3.0);
	/* A connect timeout fails sooner, as "cannot connect". */
	kms_client_set_timeout(c, 20000);
	kms_client_set_connect_timeout(c, 200);
	t0 = tu_now_s();
	assert_int_equal(kms_generate_random(c, 16, &s, &ei), KMS_ETRANSPORT);
	assert_non_null(strstr(ei.message, "Could not connect"));
	assert_true(tu_now_s() - t0 < 3.0);
	kms_client_close(c);
}

static void
test_silent_daemon_times_out(void **state)
{
	kms_secret s;
	kms_error_info ei;
	double t0;

	srv_set(SRV_SILENT, "", 0);
	kms_client_set_timeout(cl, 300);
	t0 = tu_now_s();
	if (kms_generate_random(cl, 16, &s, &ei) != KMS_ETIMEDOUT) {
		fail_msg("%s: %s", ei.name, ei.message);
	}
	assert_true(tu_now_s() - t0 < 3.0);
	kms_client_set_timeout(cl, 5000);
	/* The client is still usable. */
	srv_reply("{\"Plaintext\":\"AAEC\"}");
	assert_int_equal(kms_generate_random(cl, 3, &s, &ei), 0);
	assert_int_equal(s.len, 3);
	kms_secret_free(&s);
}

static void
test_dropped_connection_fails_the_call_and_is_never_resent(void **state)
{
	kms_create_key_req req = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	kms_secret s;
	double t0;

	int n0;

	srv_set(SRV_DROP, "", 0);
	n0 = srv_count();
	t0 = tu_now_s();
	assert_int_equal(kms_create_key(cl, &req, &m, &ei), KMS_ETRANSPORT);
	if (strstr(ei.message, "may or may not") == NULL) {
		fail_msg("%s: %s", ei.name, ei.message);
	}
	assert_true(tu_now_s() - t0 < 3.0);
	assert_int_equal(srv_count(), n0 + 1);
	/* Give nng time to redial: the CreateKey must not come again. */
	srv_reply("{\"Plaintext\":\"AAEC\"}");
	usleep(500 * 1000);
	assert_int_equal(srv_count(), n0 + 1);
	if (kms_generate_random(cl, 3, &s, &ei) != 0) {
		fail_msg("%s: %s", ei.name, ei.message);
	}
	kms_secret_free(&s);
	assert_int_equal(srv_count(), n0 + 2);
}

/* ------------------------------------------------ arguments */

static void
test_batch_of_zero_or_over_1000_items_is_invalid(void **state)
{
	static kms_batch_item items[KMS_MAX_BATCH + 1];
	kms_error_info ei;

	assert_int_equal(kms_batch(cl, items, 0, &ei), KMS_EINVAL);
	assert_string_equal(ei.name, "InvalidArgumentError");
	assert_int_equal(kms_batch(cl, items, KMS_MAX_BATCH + 1, &ei),
	    KMS_EINVAL);
	assert_int_equal(kms_batch(cl, NULL, 1, &ei), KMS_EINVAL);
}

static void
test_null_arguments_are_invalid_and_nothing_is_sent(void **state)
{
	kms_encrypt_req er = { 0 };
	kms_encrypt_resp eo;
	kms_decrypt_req dr = { 0 };
	kms_decrypt_resp dout;
	kms_context_pair dup[2] = { { "a", "1" }, { "a", "2" } };
	kms_error_info ei;
	int n0 = srv_count();

	srv_reply("{}");
	assert_int_equal(kms_encrypt(cl, NULL, &eo, &ei), KMS_EINVAL);
	assert_int_equal(kms_encrypt(cl, &er, &eo, &ei), KMS_EINVAL);
	er.key_id = "k";
	er.plaintext_len = 4;	/* but no bytes */
	assert_int_equal(kms_encrypt(cl, &er, &eo, &ei), KMS_EINVAL);
	er.plaintext = (const uint8_t *)"abcd";
	er.context.pairs = dup;
	er.context.npairs = 2;
	assert_int_equal(kms_encrypt(cl, &er, &eo, &ei), KMS_EINVAL);
	assert_non_null(strstr(ei.message, "duplicate"));
	dr.ciphertext_len = 3;
	assert_int_equal(kms_decrypt(cl, &dr, &dout, &ei), KMS_EINVAL);
	assert_int_equal(kms_describe_key(cl, NULL, NULL, NULL, &ei),
	    KMS_EINVAL);
	assert_int_equal(kms_client_open(NULL, NULL), KMS_EINVAL);
	assert_int_equal(kms_call_json(cl, NULL, 0, NULL, NULL, &ei),
	    KMS_EINVAL);
	assert_int_equal(srv_count(), n0);
}

static void
test_request_over_one_mebibyte_is_not_sent(void **state)
{
	size_t n = 1024 * 1024 + 1;
	char *big = malloc(n), *reply = NULL;
	kms_error_info ei;
	int n0 = srv_count();

	assert_non_null(big);
	memset(big, ' ', n);
	srv_reply("{}");
	assert_int_equal(kms_call_json(cl, big, n, &reply, NULL, &ei),
	    KMS_EINVAL);
	assert_null(reply);
	assert_int_equal(srv_count(), n0);
	free(big);
}

/* ------------------------------------------------ a peer that breaks the protocol */

/*
 * The library speaks the req0 wire protocol itself, so a peer that breaks
 * it (another service on the socket, a damaged or hostile daemon) must
 * give a typed error, never a crash, a hang or a mix-up of replies.
 */
enum raw_mode {
	RAW_OTHER_PROTOCOL,	/* handshake of another SP protocol */
	RAW_NOT_SP,		/* not an SP handshake at all */
	RAW_HUGE_FRAME,		/* a reply announcing 2 GiB */
	RAW_BAD_TYPE,		/* a frame of another type */
	RAW_WRONG_ID_FIRST,	/* a stray reply, then the right one */
};

struct raw_srv {
	int lfd;
	enum raw_mode mode;
	char path[128];
	pthread_t thread;
};

static int
raw_read(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if ((r = read(fd, p + got, n - got)) <= 0) {
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

/* A frame: type, 64-bit big-endian length, id, body. */
static void
raw_frame(int fd, uint8_t type, uint64_t len, const uint8_t id[4],
    const char *body)
{
	uint8_t hdr[13];
	int i;

	hdr[0] = type;
	for (i = 0; i < 8; i++) {
		hdr[1 + i] = (uint8_t)(len >> (56 - 8 * i));
	}
	memcpy(hdr + 9, id, 4);
	/* The client may hang up at any point: no SIGPIPE for the test. */
	if (send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) != (ssize_t)sizeof(hdr) ||
	    (body != NULL && send(fd, body, strlen(body), MSG_NOSIGNAL) !=
	    (ssize_t)strlen(body))) {
		return;
	}
}

static void *
raw_main(void *arg)
{
	static const uint8_t rep0[8] = { 0, 'S', 'P', 0, 0, 0x31, 0, 0 };
	static const uint8_t pair1[8] = { 0, 'S', 'P', 0, 0, 0x11, 0, 0 };
	static const char reply[] = "{\"Plaintext\":\"AAEC\"}";
	struct raw_srv *rs = arg;
	uint8_t hello[8], hdr[9], id[4], other[4], *body;
	uint64_t len = 0;
	int fd, i;

	if ((fd = accept(rs->lfd, NULL, NULL)) < 0) {
		return NULL;
	}
	if (raw_read(fd, hello, sizeof(hello)) != 0) {
		goto out;
	}
	if (rs->mode == RAW_OTHER_PROTOCOL) {
		(void)!send(fd, pair1, sizeof(pair1), MSG_NOSIGNAL);
		goto out;
	}
	if (rs->mode == RAW_NOT_SP) {
		(void)!send(fd, "HTTP/1.1", 8, MSG_NOSIGNAL);
		goto out;
	}
	if (send(fd, rep0, sizeof(rep0), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(rep0) ||
	    raw_read(fd, hdr, sizeof(hdr)) != 0) {
		goto out;
	}
	for (i = 0; i < 8; i++) {
		len = len << 8 | hdr[1 + i];
	}
	if (len < 4 || len > 65536 || (body = malloc(len)) == NULL) {
		goto out;
	}
	if (raw_read(fd, body, len) != 0) {
		free(body);
		goto out;
	}
	memcpy(id, body, 4);
	free(body);
	switch (rs->mode) {
	case RAW_HUGE_FRAME:
		raw_frame(fd, 1, (uint64_t)2 << 30, id, NULL);
		break;
	case RAW_BAD_TYPE:
		raw_frame(fd, 2, 4 + strlen(reply), id, reply);
		break;
	case RAW_WRONG_ID_FIRST:
		memcpy(other, id, 4);
		other[3] ^= 0x5a;
		raw_frame(fd, 1, 4 + 13, other, "{\"Plaintext\":");
		raw_frame(fd, 1, 4 + strlen(reply), id, reply);
		(void)raw_read(fd, hdr, 1);	/* until the client closes */
		break;
	default:
		break;
	}
 out:
	close(fd);
	return NULL;
}

static void
raw_start(struct raw_srv *rs, enum raw_mode mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	rs->mode = mode;
	snprintf(rs->path, sizeof(rs->path), "%s/raw.sock", srv.dir);
	unlink(rs->path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", rs->path);
	assert_true((rs->lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(rs->lfd, (struct sockaddr *)&sa, sizeof(sa)),
	    0);
	assert_int_equal(listen(rs->lfd, 4), 0);
	assert_int_equal(pthread_create(&rs->thread, NULL, raw_main, rs), 0);
}

static void
raw_stop(struct raw_srv *rs)
{
	pthread_join(rs->thread, NULL);
	close(rs->lfd);
	unlink(rs->path);
}

static void
test_a_peer_breaking_the_protocol_gives_typed_errors(void **state)
{
	static const struct {
		enum raw_mode mode;
		int code;
		const char *says;
	} cases[] = {
		{ RAW_OTHER_PROTOCOL, KMS_ETRANSPORT, "does not speak" },
		{ RAW_NOT_SP, KMS_ETRANSPORT, "does not speak" },
		{ RAW_HUGE_FRAME, KMS_ETRANSPORT, "dropped" },
		{ RAW_BAD_TYPE, KMS_ETRANSPORT, "dropped" },
		{ RAW_WRONG_ID_FIRST, 0, NULL },
	};
	struct raw_srv rs;
	kms_client *c;
	kms_secret s;
	kms_error_info ei;
	char url[200];
	double t0;
	size_t i;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw_start(&rs, cases[i].mode);
		snprintf(url, sizeof(url), "ipc://%s", rs.path);
		assert_int_equal(kms_client_open(&c, url), 0);
		kms_client_set_timeout(c, 2000);
		t0 = tu_now_s();
		r = kms_generate_random(c, 3, &s, &ei);
		if (r != cases[i].code || (cases[i].says != NULL &&
		    strstr(ei.message, cases[i].says) == NULL)) {
			fail_msg("case %zu: %d %s: %s", i, r, ei.name,
			    ei.message);
		}
		if (r == 0) {
			/* The stray reply was not taken for this one. */
			assert_int_equal(s.len, 3);
			assert_int_equal(s.data[2], 2);
			kms_secret_free(&s);
		}
		assert_true(tu_now_s() - t0 < 1.9);	/* not the timeout */
		kms_client_close(c);
		raw_stop(&rs);
	}
}

/* ------------------------------------------------ reply parsing */

static void
test_generate_data_key_reply_gives_plaintext_in_secret(void **state)
{
	kms_context_pair pairs[] = { { "tenant", "acme" } };
	const char *tok[] = { "g1" };
	kms_generate_data_key_req req = { 0 };
	kms_generate_data_key_resp out;
	kms_error_info ei;
	json_t *j;
	size_t i;

	/* 32 bytes 0..31 */
	srv_reply("{\"CiphertextBlob\":\"AQID\",\"Plaintext\":"
	    "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
	    "\"KeyId\":\"arn:aws:kms:local:111122223333:key/k\"}");
	req.key_id = "alias/app";
	req.key_spec = "AES_256";
	req.context.pairs = pairs;
	req.context.npairs = 1;
	req.grant_tokens.tokens = tok;
	req.grant_tokens.ntokens = 1;
	assert_int_equal(kms_generate_data_key(cl, &req, &out, &ei), 0);
	assert_int_equal(ei.code, 0);
	assert_int_equal(out.plaintext.len, 32);
	for (i = 0; i < 32; i++) {
		assert_int_equal(out.plaintext.data[i], i);
	}
	assert_int_equal(out.ciphertext_blob.len, 3);
	assert_int_equal(out.ciphertext_blob.data[2], 3);
	assert_string_equal(out.key_id, "arn:aws:kms:local:111122223333:key/k");
	kms_generate_data_key_resp_free(&out);
	assert_null(out.plaintext.data);

	/* The request carried the AWS fields. */
	assert_non_null(j = srv_last_request());
	assert_string_equal(json_string_value(json_object_get(j, "Action")),
	    "GenerateDataKey");
	assert_string_equal(json_string_value(json_object_get(j, "KeyId")),
	    "alias/app");
	assert_string_equal(json_string_value(json_object_get(j, "KeySpec")),
	    "AES_256");
	assert_null(json_object_get(j, "NumberOfBytes"));
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(j, "EncryptionContext"), "tenant")), "acme");
	assert_string_equal(json_string_value(json_array_get(
	    json_object_get(j, "GrantTokens"), 0)), "g1");
	json_decref(j);
}

static void
test_encrypt_sends_plaintext_in_base64(void **state)
{
	kms_encrypt_req req = { 0 };
	kms_encrypt_resp out;
	kms_error_info ei;
	json_t *j;

	srv_reply("{\"CiphertextBlob\":\"AQID\",\"KeyId\":\"arn:x\","
	    "\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}");
	req.key_id = "k";
	req.plaintext = (const uint8_t *)"hello";
	req.plaintext_len = 5;
	assert_int_equal(kms_encrypt(cl, &req, &out, &ei), 0);
	assert_string_equal(out.encryption_algorithm, "SYMMETRIC_DEFAULT");
	kms_encrypt_resp_free(&out);
	assert_non_null(j = srv_last_request());
	assert_string_equal(json_string_value(json_object_get(j,
	    "Plaintext")), "aGVsbG8=");
	assert_null(json_object_get(j, "EncryptionContext"));
	json_decref(j);
}

static void
test_error_reply_gives_code_name_and_message(void **state)
{
	kms_key_metadata m;
	kms_error_info ei;

	srv_reply("{\"__type\":\"NotFoundException\",\"message\":"
	    "\"Key 'k' does not exist\"}");
	assert_int_equal(kms_describe_key(cl, "k", NULL, &m, &ei),
	    KMS_ENOTFOUND);
	assert_int_equal(ei.code, KMS_ENOTFOUND);
	assert_string_equal(ei.name, "NotFoundException");
	assert_string_equal(ei.message, "Key 'k' does not exist");

	/* A name the library does not know keeps its name. */
	srv_reply("{\"__type\":\"FancyNewException\",\"message\":\"m\"}");
	assert_int_equal(kms_describe_key(cl, "k", NULL, &m, &ei),
	    KMS_EINTERNAL);
	assert_string_equal(ei.name, "FancyNewException");
	srv_reply("{\"__type\":42}");
	assert_int_equal(kms_describe_key(cl, "k", NULL, &m, &ei),
	    KMS_EPROTO);
}

static void
test_malformed_replies_are_protocol_errors(void **state)
{
	static const char *bad[] = {
		"{not json",
		"[1,2]",
		"",
		"{\"CiphertextBlob\":\"AQID\"} trailing",
		"{\"CiphertextBlob\":\"AQID\",\"CiphertextBlob\":\"AQID\"}",
		"{\"CiphertextBlob\":\"@@@@\",\"Plaintext\":\"AAEC\"}",
		"{\"CiphertextBlob\":\"AQID\",\"Plaintext\":\"AAE\"}",
		"{\"CiphertextBlob\":\"AQID\",\"Plaintext\":7}",
		"{\"Plaintext\":\"AAEC\"}",
		"{\"CiphertextBlob\":\"AQID\",\"Plaintext\":\"AAEC\","
		    "\"KeyId\":[]}",
	};
	kms_generate_data_key_req req = { 0 };
	kms_generate_data_key_resp out;
	kms_error_info ei;
	size_t i;

	req.key_id = "k";
	req.number_of_bytes = 3;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		srv_reply(bad[i]);
		if (kms_generate_data_key(cl, &req, &out, &ei) != KMS_EPROTO) {
			fail_msg("reply %zu (%s) not rejected", i, bad[i]);
		}
		assert_string_equal(ei.name, "ProtocolError");
	}
}

static void
test_key_metadata_reply_is_read_with_aws_names(void **state)
{
	kms_key_metadata m;
	kms_error_info ei;
	char big[600];

	srv_reply("{\"KeyMetadata\":{\"AWSAccountId\":\"111\",\"KeyId\":"
	    "\"0b6a4b1e-6b1c-4d5e-9f00-000000000001\",\"Arn\":\"arn:aws:kms:"
	    "local:111:key/0b6a4b1e-6b1c-4d5e-9f00-000000000001\","
	    "\"CreationDate\":1712345678.5,\"Enabled\":false,\"Description\":"
	    "\"d\",\"KeyUsage\":\"ENCRYPT_DECRYPT\",\"KeyState\":\"Disabled\","
	    "\"Origin\":\"AWS_KMS\",\"KeyManager\":\"CUSTOMER\",\"KeySpec\":"
	    "\"SYMMETRIC_DEFAULT\",\"CustomerMasterKeySpec\":"
	    "\"SYMMETRIC_DEFAULT\",\"EncryptionAlgorithms\":"
	    "[\"SYMMETRIC_DEFAULT\"],\"MultiRegion\":false}}");
	assert_int_equal(kms_describe_key(cl, "k", NULL, &m, &ei), 0);
	assert_string_equal(m.key_id, "0b6a4b1e-6b1c-4d5e-9f00-000000000001");
	assert_string_equal(m.key_state, "Disabled");
	assert_false(m.enabled);
	assert_true(m.creation_date > 1712345678.0);
	assert_string_equal(m.description, "d");
	assert_int_equal(m.nencryption_algorithms, 1);
	kms_key_metadata_free(&m);

	/* A field longer than its buffer is refused, not truncated. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		char reply[1024];
		snprintf(reply, sizeof(reply), "{\"KeyMetadata\":{\"KeyId\":"
		    "\"k\",\"Arn\":\"%s\"}}", big);
		srv_reply(reply);
	}
	assert_int_equal(kms_describe_key(cl, "k", NULL, &m, &ei),
	    KMS_EPROTO);
}

/* A valid reply object of n bytes (one long member). */
static char *
reply_of(size_t n)
{
	char *big = malloc(n + 1);

	assert_non_null(big);
	memset(big, 'A', n);
	memcpy(big, "{\"Plaintext\":\"", 14);
	memcpy(big + n - 2, "\"}", 2);
	big[n] = '\0';
	return big;
}

static void
test_oversized_and_deep_replies_are_rejected(void **state)
{
	static const char raw[] = "{\"Action\":\"GenerateRandom\"}";
	size_t n = JSON_MAX_REPLY + 1;
	char *big = reply_of(n), *reply = NULL;
	char deep[200];
	kms_secret s;
	kms_error_info ei;
	size_t rlen = 0;
	int i;

	/* A valid object, just over the largest reply kmsd sends: the
	 * frame is refused (the connection dropped) ... */
	srv_set(SRV_REPLY, big, n);
	assert_int_equal(kms_generate_random(cl, 3, &s, &ei),
	    KMS_ETRANSPORT);
	free(big);

	/* ... while one of exactly that size, over the 1 MiB a request may
	 * be, arrives whole. */
	big = reply_of(JSON_MAX_REPLY);
	srv_set(SRV_REPLY, big, JSON_MAX_REPLY);
	assert_int_equal(kms_call_json(cl, raw, strlen(raw), &reply, &rlen,
	    &ei), 0);
	assert_int_equal(rlen, JSON_MAX_REPLY);
	assert_memory_equal(reply, big, rlen);
	kms_free(reply);
	/* A member longer than its field is still a protocol error. */
	assert_int_equal(kms_generate_random(cl, 3, &s, &ei), KMS_EPROTO);
	free(big);

	/* Nesting deeper than 32. */
	deep[0] = '\0';
	strcat(deep, "{\"a\":");
	for (i = 0; i < 40; i++) {
		strcat(deep, "[");
	}
	for (i = 0; i < 40; i++) {
		strcat(deep, "]");
	}
	strcat(deep, "}");
	srv_reply(deep);
	assert_int_equal(kms_generate_random(cl, 3, &s, &ei), KMS_EPROTO);
}

static void
test_batch_reply_maps_mixed_items_in_order(void **state)
{
	kms_batch_item items[3];
	kms_error_info ei;
	json_t *j, *reqs;
	const uint8_t pt[] = "x";

	memset(items, 0, sizeof(items));
	items[0].op = KMS_BATCH_GENERATE_DATA_KEY;
	items[0].req.generate_data_key.key_id = "k";
	items[0].req.generate_data_key.key_spec = "AES_128";
	items[1].op = KMS_BATCH_ENCRYPT;
	items[1].req.encrypt.key_id = "alias/none";
	items[1].req.encrypt.plaintext = pt;
	items[1].req.encrypt.plaintext_len = 1;
	items[2].op = KMS_BATCH_DECRYPT;
	items[2].req.decrypt.ciphertext_blob = pt;
	items[2].req.decrypt.ciphertext_len = 1;
	srv_reply("{\"Responses\":["
	    "{\"CiphertextBlob\":\"AQID\",\"Plaintext\":"
	    "\"AAECAwQFBgcICQoLDA0ODw==\",\"KeyId\":\"arn:k\"},"
	    "{\"__type\":\"NotFoundException\",\"message\":\"no alias\"},"
	    "{\"Plaintext\":\"eA==\",\"KeyId\":\"arn:k\"}]}");
	assert_int_equal(kms_batch(cl, items, 3, &ei), 0);
	assert_int_equal(items[0].err.code, 0);
	assert_int_equal(items[0].resp.generate_data_key.plaintext.len, 16);
	assert_int_equal(items[1].err.code, KMS_ENOTFOUND);
	assert_string_equal(items[1].err.name, "NotFoundException");
	assert_string_equal(items[1].err.message, "no alias");
	assert_null(items[1].resp.encrypt.ciphertext_blob.data);
	assert_int_equal(items[2].err.code, 0);
	assert_memory_equal(items[2].resp.decrypt.plaintext.data, "x", 1);
	for (int i = 0; i < 3; i++) {
		kms_batch_item_free(&items[i]);
	}

	/* The request: Action Batch, each item with its own Action. */
	assert_non_null(j = srv_last_request());
	assert_string_equal(json_string_value(json_object_get(j, "Action")),
	    "Batch");
	reqs = json_object_get(j, "Requests");
	assert_int_equal(json_array_size(reqs), 3);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(reqs, 1), "Action")), "Encrypt");
	json_decref(j);

	/* Fewer responses than requests: the whole batch is refused. */
	srv_reply("{\"Responses\":[{\"__type\":\"NotFoundException\"}]}");
	assert_int_equal(kms_batch(cl, items, 3, &ei), KMS_EPROTO);
	/* An unreadable item fails only that item. */
	srv_reply("{\"Responses\":[{\"Plaintext\":7},"
	    "{\"__type\":\"DisabledException\",\"message\":\"\"},"
	    "{\"Plaintext\":\"eA==\"}]}");
	assert_int_equal(kms_batch(cl, items, 3, &ei), 0);
	assert_int_equal(items[0].err.code, KMS_EPROTO);
	assert_int_equal(items[1].err.code, KMS_EDISABLED);
	assert_int_equal(items[2].err.code, 0);
	for (int i = 0; i < 3; i++) {
		kms_batch_item_free(&items[i]);
	}
}

static void
test_raw_call_returns_reply_text_and_status(void **state)
{
	const char *req = "{\"Action\":\"ListAliases\"}";
	char *reply = NULL;
	size_t n = 0;
	kms_error_info ei;

	srv_reply("{\"Aliases\":[]}");
	assert_int_equal(kms_call_json(cl, req, strlen(req), &reply, &n, &ei),
	    0);
	assert_string_equal(reply, "{\"Aliases\":[]}");
	assert_int_equal(n, strlen(reply));
	kms_free(reply);
	srv_reply("{\"__type\":\"UnknownOperationException\",\"message\":"
	    "\"no\"}");
	assert_int_equal(kms_call_json(cl, req, strlen(req), &reply, &n, &ei),
	    KMS_EUNKNOWNOP);
	assert_non_null(strstr(reply, "UnknownOperationException"));
	assert_string_equal(ei.name, "UnknownOperationException");
	kms_free(reply);
}

static void
test_key_list_reply_pages(void **state)
{
	kms_key_list l;
	kms_error_info ei;
	json_t *j;

	srv_reply("{\"Keys\":[{\"KeyId\":\"a\",\"KeyArn\":\"arn:a\"},"
	    "{\"KeyId\":\"b\",\"KeyArn\":\"arn:b\"}],\"Truncated\":true,"
	    "\"NextMarker\":\"b\"}");
	assert_int_equal(kms_list_keys(cl, 2, "m0", &l, &ei), 0);
	assert_int_equal(l.nkeys, 2);
	assert_string_equal(l.keys[1].key_arn, "arn:b");
	assert_true(l.truncated);
	assert_string_equal(l.next_marker, "b");
	kms_key_list_free(&l);
	assert_non_null(j = srv_last_request());
	assert_int_equal(json_integer_value(json_object_get(j, "Limit")), 2);
	assert_string_equal(json_string_value(json_object_get(j, "Marker")),
	    "m0");
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_library_exports_only_kms_symbols),
		cmocka_unit_test(test_archive_defines_only_kms_symbols),
		cmocka_unit_test(
		    test_archive_beside_libuuid_keeps_libuuids_uuid_parse),
		cmocka_unit_test(test_default_endpoint_prefers_KMS_ENDPOINT),
		cmocka_unit_test(test_default_endpoint_finds_var_socket_upwards),
		cmocka_unit_test(test_absent_daemon_fails_fast_without_hanging),
		cmocka_unit_test(test_silent_daemon_times_out),
		cmocka_unit_test(test_dropped_connection_fails_the_call_and_is_never_resent),
		cmocka_unit_test(test_batch_of_zero_or_over_1000_items_is_invalid),
		cmocka_unit_test(test_null_arguments_are_invalid_and_nothing_is_sent),
		cmocka_unit_test(test_request_over_one_mebibyte_is_not_sent),
		cmocka_unit_test(test_a_peer_breaking_the_protocol_gives_typed_errors),
		cmocka_unit_test(test_generate_data_key_reply_gives_plaintext_in_secret),
		cmocka_unit_test(test_encrypt_sends_plaintext_in_base64),
		cmocka_unit_test(test_error_reply_gives_code_name_and_message),
		cmocka_unit_test(test_malformed_replies_are_protocol_errors),
		cmocka_unit_test(test_key_metadata_reply_is_read_with_aws_names),
		cmocka_unit_test(test_oversized_and_deep_replies_are_rejected),
		cmocka_unit_test(test_batch_reply_maps_mixed_items_in_order),
		cmocka_unit_test(test_raw_call_returns_reply_text_and_status),
		cmocka_unit_test(test_key_list_reply_pages),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
