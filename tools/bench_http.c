/*
 * bench_http.c — kms-bench against kmsd's HTTP(S) endpoint
 * (--endpoint https://…): requests made and SigV4-signed by libcurl over
 * keep-alive connections, one per client thread, credentials from
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the region from --region
 * (default $AWS_DEFAULT_REGION, else local).
 *
 * --baseline http-echo: the same HTTP library kmsd uses (libmicrohttpd,
 * same TLS certificate, --echo-workers pool threads) answering a fixed
 * body of the size of kmsd's reply, driven by the same clients with the
 * same signed requests, alternating with kmsd for --rounds rounds.  The
 * echo server is a child process of kms-bench on the same cores, in a
 * session of its own as a service would be (start kmsd likewise, e.g.
 * with setsid(1), for a like-for-like figure).  Its
 * ratio says what kmsd's work costs over the transport; the server CPU
 * time per request of each (kmsd found by its listening port, or
 * --kmsd-pid) says the same without the clients' share of the cores.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>

#include "tools/bench.h"
#include "tools/proc.h"

#define HTTP_BODY_MAX (64 * 1024)
#define HTTP_PEM_MAX (256 * 1024)

struct hthr {
	CURL *curl;
	struct curl_slist *hdrs;
	const char *body;
	char *resp;
	size_t resp_len, resp_cap;
	char sigv4[128];
	char userpwd[512];
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct hthr *t = arg;
	size_t k = size * n;

	if (k > HTTP_BODY_MAX - t->resp_len) {
		return 0;	/* too large: curl fails the transfer */
	}
	memcpy(t->resp + t->resp_len, p, k);
	t->resp_len += k;
	t->resp[t->resp_len] = '\0';
	return k;
}

static int
thr_init(struct hthr *t, const struct bench_opts *o, const char *url,
    const char *target, const char *body, const char *region)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	char th[160];

	memset(t, 0, sizeof(*t));
	if (ak == NULL || sk == NULL) {
		fprintf(stderr, "kms-bench: AWS_ACCESS_KEY_ID and "
		    "AWS_SECRET_ACCESS_KEY must name a kmsd access key\n");
		return -1;
	}
	if ((t->curl = curl_easy_init()) == NULL ||
	    (t->resp = malloc(HTTP_BODY_MAX + 1)) == NULL) {
		return -1;
	}
	snprintf(th, sizeof(th), "X-Amz-Target: TrentService.%s", target);
	t->hdrs = curl_slist_append(NULL, "Content-Type: "
	    "application/x-amz-json-1.1");
	t->hdrs = curl_slist_append(t->hdrs, th);
	t->body = body;
	snprintf(t->sigv4, sizeof(t->sigv4), "aws:amz:%s:kms", region);
	snprintf(t->userpwd, sizeof(t->userpwd), "%s:%s", ak, sk);
	curl_easy_setopt(t->curl, CURLOPT_URL, url);
	curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, t->hdrs);
	curl_easy_setopt(t->curl, CURLOPT_AWS_SIGV4, t->sigv4);
	curl_easy_setopt(t->curl, CURLOPT_USERPWD, t->userpwd);
	curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(t->curl, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(t->curl, CURLOPT_TIMEOUT, 30L);
	if (o->ca_bundle != NULL) {
		curl_easy_setopt(t->curl, CURLOPT_CAINFO, o->ca_bundle);
	}
	return 0;
}

static void
thr_fini(struct hthr *t)
{
	if (t->curl != NULL) {
		curl_easy_cleanup(t->curl);
	}
	curl_slist_free_all(t->hdrs);
	free(t->resp);
}

/* One signed request; 0 when answered 200. */
static int
perform(struct hthr *t, char *err, size_t errlen)
{
	CURLcode cr;
	long status = 0;

	t->resp_len = 0;
	t->resp[0] = '\0';
	if ((cr = curl_easy_perform(t->curl)) != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(cr));
		return -1;
	}
	curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		snprintf(err, errlen, "HTTP %ld: %.200s", status, t->resp);
		return -1;
	}
	return 0;
}

static int
http_req(void *arg, uint64_t *seed, uint64_t *ops, uint64_t *op_errors,
    char *err, size_t errlen)
{
	*ops = 1;
	*op_errors = 0;
	return perform(arg, err, errlen);
}

/* ---- the echo server: libmicrohttpd answering a fixed body ---- */

struct echo {
	pid_t pid;			/* the child serving, 0 when none */
	char *body;
	size_t len;
	char *cert, *key;
	char url[64];
};

static enum MHD_Result
echo_answer(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct echo *e = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (*con_cls == NULL) {
		*con_cls = e;		/* headers read */
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;	/* the body, read and dropped */
		return MHD_YES;
	}
	r = MHD_create_response_from_buffer(e->len, e->body,
	    MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type",
	    "application/x-amz-json-1.1");
	MHD_add_response_header(r, "x-amzn-RequestId",
	    "00000000-0000-4000-8000-000000000000");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (f == NULL || (buf = malloc(HTTP_PEM_MAX + 1)) == NULL) {
		if (f != NULL) {
			fclose(f);
		}
		return NULL;
	}
	n = fread(buf, 1, HTTP_PEM_MAX, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int
echo_start(const struct bench_opts *o, int tls, size_t len, struct echo *e)
{
	const union MHD_DaemonInfo *di;
	unsigned port = 0;
	int fds[2];
	ssize_t n;
	size_t i;

	memset(e, 0, sizeof(*e));
	if ((e->body = malloc(len)) == NULL) {
		return -1;
	}
	/* A JSON object of the reply's size. */
	memset(e->body, ' ', len);
	e->body[0] = '{';
	e->body[len - 1] = '}';
	for (i = 1; i + 1 < len && i < 8; i++) {
		e->body[i] = ' ';
	}
	e->len = len;
	if (tls && ((e->cert = read_file(o->tls_cert)) == NULL ||
	    (e->key = read_file(o->tls_key)) == NULL)) {
		fprintf(stderr, "kms-bench: --baseline http-echo over https "
		    "needs --tls-cert and --tls-key (kmsd's)\n");
		return -1;
	}
	if (pipe(fds) != 0) {
		return -1;
	}
	if ((e->pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (e->pid == 0) {
		struct MHD_Daemon *mhd;

		/* A server of its own, as kmsd is: its own session, so that
		 * the scheduler's autogroups weigh it against the clients as
		 * a service (systemd gives each its own group) and its callers
		 * are weighed, not thread against thread. */
		(void)setsid();
		close(fds[0]);
		if (tls) {
			mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
			    MHD_USE_EPOLL | MHD_USE_TLS, 0, NULL, NULL,
			    echo_answer, e, MHD_OPTION_THREAD_POOL_SIZE,
			    (unsigned)o->echo_workers,
			    MHD_OPTION_HTTPS_MEM_CERT, e->cert,
			    MHD_OPTION_HTTPS_MEM_KEY, e->key,
			    MHD_OPTION_HTTPS_PRIORITIES,
			    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
			    MHD_OPTION_END);
		} else {
			mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
			    MHD_USE_EPOLL, 0, NULL, NULL, echo_answer, e,
			    MHD_OPTION_THREAD_POOL_SIZE,
			    (unsigned)o->echo_workers, MHD_OPTION_END);
		}
		if (mhd != NULL && (di = MHD_get_daemon_info(mhd,
		    MHD_DAEMON_INFO_BIND_PORT)) != NULL) {
			port = di->port;
		}
		if (write(fds[1], &port, sizeof(port)) != sizeof(port) ||
		    port == 0) {
			_exit(1);
		}
		for (;;) {
			pause();	/* until echo_stop's SIGTERM */
		}
	}
	close(fds[1]);
	n = read(fds[0], &port, sizeof(port));
	close(fds[0]);
	if (n != (ssize_t)sizeof(port) || port == 0) {
		fprintf(stderr, "kms-bench: cannot start the http-echo server\n");
		return -1;
	}
	snprintf(e->url, sizeof(e->url), "%s://127.0.0.1:%u/", tls ? "https" :
	    "http", port);
	return 0;
}

static void
echo_stop(struct echo *e)
{
	if (e->pid > 0) {
		kill(e->pid, SIGTERM);
		waitpid(e->pid, NULL, 0);
		e->pid = 0;
	}
	free(e->body);
	free(e->cert);
	free(e->key);
}

/* ---- one measurement: nthr threads on url ---- */

static int
measure(const struct bench_opts *o, const char *url, const char *target,
    const char *body, const char *region, pid_t pid,
    struct bench_result *res)
{
	struct hthr *ts = calloc((size_t)o->clients, sizeof(*ts));
	void **args = calloc((size_t)o->clients, sizeof(*args));
	struct bench_run run;
	int i, r = -1;

	if (ts == NULL || args == NULL) {
		goto out;
	}
	for (i = 0; i < o->clients; i++) {
		if (thr_init(&ts[i], o, url, target, body, region) != 0) {
			goto out;
		}
		args[i] = &ts[i];
	}
	memset(&run, 0, sizeof(run));
	run.nthreads = o->clients;
	run.args = args;
	run.fn = http_req;
	run.warmup = o->warmup;
	run.duration = o->duration;
	run.count = o->count;
	run.ops_per_req = 1;
	run.watch_pid = pid;
	r = bench_run(&run, res);
 out:
	for (i = 0; ts != NULL && i < o->clients; i++) {
		thr_fini(&ts[i]);
	}
	free(ts);
	free(args);
	return r;
}

/* A one-off call: the reply object, or NULL with the reason printed. */
static json_t *
call(const struct bench_opts *o, const char *target, const char *body,
    const char *region)
{
	struct hthr t;
	char err[BENCH_ERR_MAX];
	json_t *j = NULL;

	if (thr_init(&t, o, o->endpoint, target, body, region) != 0) {
		thr_fini(&t);
		return NULL;
	}
	if (perform(&t, err, sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: %s: %s\n", target, err);
	} else if ((j = json_loadb(t.resp, t.resp_len, 0, NULL)) == NULL) {
		fprintf(stderr, "kms-bench: %s: unreadable reply\n", target);
	}
	thr_fini(&t);
	return j;
}

/* The server's CPU time per request in microseconds, or -1. */
static double
cpu_us(const struct bench_result *r)
{
	return r->cpu_s >= 0 && r->requests > 0 ? r->cpu_s * 1e6 /
	    (double)r->requests : -1;
}

static void
print_result(const char *name, const struct bench_result *r)
{
	printf("  %-10s %10.1f ops/s  p50 %8.1f us  p99 %8.1f us  "
	    "(%llu requests, %llu errors)", name, r->ops_per_s, r->lat.p50,
	    r->lat.p99, (unsigned long long)r->requests,
	    (unsigned long long)r->errors);
	if (cpu_us(r) >= 0) {
		printf(", server CPU %.1f us a request", cpu_us(r));
	}
	printf("\n");
}

/* kmsd's pid: --kmsd-pid, else the process listening on the URL's port
 * on this machine, else 0 (no CPU figure). */
static pid_t
endpoint_pid(const struct bench_opts *o)
{
	const char *p = strrchr(o->endpoint, ':');
	char *end;
	long port;

	if (o->kmsd_pid > 0) {
		return o->kmsd_pid;
	}
	if (p == NULL || (port = strtol(p + 1, &end, 10)) <= 0 ||
	    port > 65535 || (*end != '\0' && *end != '/')) {
		return 0;
	}
	return proc_find_tcp_listener((unsigned)port);
}

int
bench_http_main(const struct bench_opts *o)
{
	static struct bench_result kr[16], br[16];
	const char *region = o->region != NULL ? o->region :
	    getenv("AWS_DEFAULT_REGION") != NULL ?
	    getenv("AWS_DEFAULT_REGION") : "local";
	const char *target;
	char body[1024], *probe_body = NULL, keyid[64];
	json_t *j, *probe;
	struct echo e;
	double ratios[16];
	int tls = strncmp(o->endpoint, "https://", 8) == 0, k, m, rc = 1;
	int ord[16];
	size_t rep_len;
	pid_t kpid = endpoint_pid(o);

	memset(&e, 0, sizeof(e));
	if (o->op != OP_GDK && o->op != OP_GDK_WP && o->op != OP_ENCRYPT) {
		fprintf(stderr, "kms-bench: over HTTP, --op is "
		    "generate-data-key, generate-data-key-without-plaintext "
		    "or encrypt\n");
		return 2;
	}
	if (o->rounds > 16) {
		fprintf(stderr, "kms-bench: at most 16 rounds over HTTP\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((j = call(o, "CreateKey", "{\"Description\":\"kms-bench\"}",
	    region)) == NULL) {
		goto out;
	}
	snprintf(keyid, sizeof(keyid), "%s", json_string_value(json_object_get(
	    json_object_get(j, "KeyMetadata"), "KeyId")) ?: "");
	json_decref(j);
	switch (o->op) {
	case OP_GDK:
	case OP_GDK_WP:
		target = o->op == OP_GDK ? "GenerateDataKey" :
		    "GenerateDataKeyWithoutPlaintext";
		snprintf(body, sizeof(body), "{\"KeyId\":\"%s\","
		    "\"NumberOfBytes\":%zu,\"EncryptionContext\":"
		    "{\"bench\":\"kms-bench\"}}", keyid, o->plaintext_bytes);
		break;
	default:
		target = "Encrypt";
		/* 32 bytes of plaintext, base64. */
		snprintf(body, sizeof(body), "{\"KeyId\":\"%s\",\"Plaintext\":"
		    "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
		    "\"EncryptionContext\":{\"bench\":\"kms-bench\"}}", keyid);
		break;
	}
	/* The reply's size, for the echo. */
	if ((probe = call(o, target, body, region)) == NULL) {
		goto out;
	}
	probe_body = json_dumps(probe, JSON_COMPACT);
	json_decref(probe);
	rep_len = probe_body != NULL ? strlen(probe_body) : 256;
	free(probe_body);
	if (o->baseline == BASE_HTTP_ECHO && echo_start(o, tls, rep_len,
	    &e) != 0) {
		goto out;
	}
	if (!o->json) {
		printf("kms-bench: %s over %s, %d clients (keep-alive), "
		    "%zu-byte requests, %zu-byte replies, %d round%s\n", target,
		    o->endpoint, o->clients, strlen(body), rep_len, o->rounds,
		    o->rounds == 1 ? "" : "s");
	}
	for (k = 0; k < o->rounds; k++) {
		if (measure(o, o->endpoint, target, body, region, kpid,
		    &kr[k]) != 0) {
			goto out;
		}
		if (o->baseline == BASE_HTTP_ECHO && measure(o, e.url, target,
		    body, region, e.pid, &br[k]) != 0) {
			goto out;
		}
		ratios[k] = o->baseline == BASE_HTTP_ECHO && br[k].ops_per_s >
		    0 ? kr[k].ops_per_s / br[k].ops_per_s : kr[k].ops_per_s;
		ord[k] = k;
		if (o->json) {
			continue;
		}
		printf("  round %d: kmsd %.1f ops/s", k + 1, kr[k].ops_per_s);
		if (o->baseline == BASE_HTTP_ECHO) {
			printf(", http-echo %.1f, ratio %.3f",
			    br[k].ops_per_s, ratios[k]);
		}
		printf("\n");
	}
	for (k = 1; k < o->rounds; k++) {
		for (m = k; m > 0 && ratios[ord[m - 1]] > ratios[ord[m]]; m--) {
			int t = ord[m];
			ord[m] = ord[m - 1];
			ord[m - 1] = t;
		}
	}
	m = ord[(o->rounds - 1) / 2];
	if (!o->json) {
		printf("median round:\n");
		print_result("kmsd", &kr[m]);
	}
	if (!o->json && o->baseline == BASE_HTTP_ECHO) {
		print_result("http-echo", &br[m]);
		printf("  ratio      %.3f (kmsd / http-echo)\n", ratios[m]);
	}
	if (o->json) {
		j = json_pack("{s:s, s:s, s:i, s:f, s:f, s:f, s:f, s:f}", "op",
		    target, "endpoint", o->endpoint, "clients", o->clients,
		    "ops_per_s", kr[m].ops_per_s, "p99_us", kr[m].lat.p99,
		    "baseline_ops_per_s", o->baseline == BASE_HTTP_ECHO ?
		    br[m].ops_per_s : 0.0, "cpu_us_per_request", cpu_us(&kr[m]),
		    "baseline_cpu_us_per_request", o->baseline ==
		    BASE_HTTP_ECHO ? cpu_us(&br[m]) : -1.0);
		if (j != NULL) {
			char *s = json_dumps(j, JSON_COMPACT);
			printf("%s\n", s != NULL ? s : "{}");
			free(s);
			json_decref(j);
		}
	}
	rc = kr[m].errors > 0 || kr[m].requests == 0 ? 3 : 0;
 out:
	echo_stop(&e);
	curl_global_cleanup();
	return rc;
}
