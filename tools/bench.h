/*
 * bench.h — kms-bench internals: options, the load runner shared by the
 * kmsd, echo and HSM measurements, latency samples and /proc readings.
 *
 * The runner starts nthreads threads that each call a request function in
 * a closed loop (one request in flight per thread) until the duration or
 * the operation count is reached; every thread keeps its own samples, so
 * the hot loop takes no lock.  Results are merged after the threads join.
 * Nothing here is shared between runs; one run at a time.
 */
#ifndef KMS_TOOLS_BENCH_H
#define KMS_TOOLS_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tools/proc.h"
#include "kms.h"

#define BENCH_MAX_CLIENTS 1024
#define BENCH_MAX_OUTSTANDING 256
#define BENCH_MAX_THREADS 4096		/* clients × outstanding */
#define BENCH_MAX_CONTEXT_PAIRS 64
#define BENCH_MAX_PREPARED 10000	/* ciphertexts made before a run */
#define BENCH_ERR_MAX 512

enum bench_op {
	OP_GDK = 0,
	OP_GDK_WP,
	OP_ENCRYPT,
	OP_DECRYPT,
	OP_RE_ENCRYPT,
	OP_CREATE_KEY,
	OP_MIX,
	OP_STARTUP,
	OP_HSM_CALLS,
	OP_ENVELOPE,
	OP_NONE
};

enum bench_baseline { BASE_NONE = 0, BASE_ECHO, BASE_HSM };

struct bench_opts {
	const char *endpoint;		/* NULL: kms_client_open default */
	int op;				/* enum bench_op */
	int clients;
	int outstanding;
	int batch;			/* operations per request; 1: no Batch */
	size_t keys;
	size_t hot;
	int reuse_keys;
	size_t plaintext_bytes;
	size_t context_pairs;
	double duration;		/* seconds; used when count is 0 */
	uint64_t count;			/* operations */
	double warmup;
	int json;
	pid_t kmsd_pid;			/* 0: found from the IPC socket */
	int baseline;			/* enum bench_baseline */
	const char *hsm_conf;		/* kmsd.conf, for --baseline hsm */
	size_t hsm_keys;		/* session objects the HSM baseline uses */
	int rounds;			/* kmsd and baseline alternated */
	int echo_workers;
	int create_threads;
	const char *kmsd_bin;		/* --op startup */
	const char *kmsd_conf;
	const char *kmsd_log;
	const char *key_id;		/* --op startup: DescribeKey this */
	const char *policy_file;	/* key policy put on the hot keys */
	uint64_t stream_mib;		/* --op envelope: stream size */
	uint32_t frame_length;		/* --op envelope: 0 = 4096 */
};

/* Latency samples of one thread (nanoseconds), grown as needed. */
struct bench_samples {
	uint64_t *ns;
	size_t n;
	size_t cap;
};

struct bench_latency {
	double p50, p90, p99, p999, max;	/* microseconds */
};

/*
 * One request: returns 0 or an error (kms_err or -1); *ops is set to the
 * operations it carried (a Batch of 100 carries 100) and *op_errors to the
 * items that failed inside an otherwise successful Batch.  Errors are
 * described in err.  seed is the thread's PRNG state.
 */
typedef int (*bench_req_fn)(void *arg, uint64_t *seed, uint64_t *ops,
    uint64_t *op_errors, char *err, size_t errlen);

struct bench_run {
	int nthreads;
	void **args;			/* one per thread */
	bench_req_fn fn;
	double warmup;
	double duration;
	uint64_t count;			/* operations; 0: use duration */
	uint64_t ops_per_req;		/* for claiming against count */
	pid_t watch_pid;		/* 0: no /proc readings */
};

struct bench_result {
	double elapsed_s;		/* measured interval */
	uint64_t ops;
	uint64_t requests;
	uint64_t errors;		/* failed operations */
	uint64_t warmup_errors;		/* failed requests during warm-up */
	double ops_per_s;
	struct bench_latency lat;	/* per request */
	double cpu_s;			/* watched process, -1 unknown */
	long long ctx_switches;		/* watched process's threads, -1 */
	long peak_rss_kib;		/* watched process, -1 unknown */
	char first_error[BENCH_ERR_MAX];
};

/* bench_run.c */
int bench_run(const struct bench_run *r, struct bench_result *out);
double bench_now(void);
uint64_t bench_rand(uint64_t *seed);
void bench_note_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* bench_echo.c */
/* Hidden mode of the binary: serve echo on url with nworkers contexts. */
int echo_server_main(const char *url, int nworkers);
struct echo_server;
/* Start the echo server as a child process of self; sets *url. */
int echo_server_start(int nworkers, struct echo_server **out,
    char *err, size_t errlen);
const char *echo_server_url(const struct echo_server *es);
pid_t echo_server_pid(const struct echo_server *es);
void echo_server_stop(struct echo_server *es);
/* Drive it: same clients/outstanding, requests of req_len bytes asking
 * for replies of rep_len bytes. */
int echo_measure(const struct bench_opts *o, const char *url, pid_t pid,
    size_t req_len, size_t rep_len, struct bench_result *res,
    char *err, size_t errlen);

/* bench_hsm.c */
int hsm_measure(const struct bench_opts *o, struct bench_result *res,
    char *err, size_t errlen);

/* bench.c */
const char *bench_op_name(int op);
/* The encryption context every request carries, keys in byte order. */
extern kms_context bench_ctx;
/* mix: the operation for one draw (GenerateDataKey 4, Decrypt 3,
 * Encrypt 2, ReEncrypt 1 in 10). */
int bench_mix_pick(uint64_t *seed);

/* --op hsm-calls (bench_hsm.c): the HSM's calls of a GenerateDataKey,
 * timed one by one, under private and public keys. */
int run_hsm_calls(const struct bench_opts *o);

/* --op envelope (bench_envelope.c): a stream through the envelope
 * encryptor and decryptor beside raw AES-256-GCM over the same frames. */
int run_envelope(const struct bench_opts *o);

#endif
