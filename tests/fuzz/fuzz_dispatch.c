/*
 * fuzz_dispatch.c — libFuzzer harness for the dispatcher: request bytes in,
 * reply bytes out (dispatch_bytes), on a worker opened against a real
 * throwaway SoftHSM2 token and a temporary SQLite store, as kmsd's own
 * workers are.
 *
 * LLVMFuzzerInitialize makes the token (tests/testutil.c), opens the daemon
 * and one worker, and creates a few keys with aliases, tags, a grant and
 * ciphertexts, so that well-formed requests reach the handlers.  Their ids
 * differ on every run, so inputs (the seeds under tests/fuzz/seeds/dispatch
 * are real requests of every operation) name them by placeholder, replaced
 * before dispatch:
 *
 *   @K1@ @K2@ @K3@   the key ids             @A1@ @A2@   their key ARNs
 *   @C1@             a ciphertext under key 1 (context {"app":"fuzz"})
 *   @C2@             a ciphertext under key 2 (no context)
 *   @G1@ @T1@        a grant id on key 1 and its token
 *
 * Every reply must be a JSON object, and an error reply must have a
 * message and an AWS error name kmsd knows as its __type.  Inputs of odd length are sent as a second
 * principal (another uid, no administrator), so that authorisation is
 * fuzzed too.  The state persists across inputs (keys made, disabled,
 * aliases moved): that is a daemon's life.  KMS_FUZZ_VERBOSE=1 prints each
 * request (placeholders replaced) and its reply.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/err.h"
#include "common/json.h"
#include "common/secmem.h"
#include "kmsd/daemon/daemon.h"
#include "kmsd/dispatch/dispatch.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"
#include "tests/testutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Room the placeholders may add to an input. */
#define EXPAND_ROOM (64 * 1024)

static struct tu_env env;
static struct kmsd d;
static struct worker w;
static struct principal alice, bob;
static int opened;

enum { PH_K1, PH_K2, PH_K3, PH_A1, PH_A2, PH_C1, PH_C2, PH_G1, PH_T1,
	PH_COUNT };
static const char *ph_name[PH_COUNT] = { "@K1@", "@K2@", "@K3@", "@A1@",
	"@A2@", "@C1@", "@C2@", "@G1@", "@T1@" };
static char ph_value[PH_COUNT][1024];

static _Noreturn void
die(const char *what)
{
	fprintf(stderr, "fuzz_dispatch: setup: %s\n", what);
	if (opened) {
		worker_fini(&w);
		kmsd_close(&d);
	}
	tu_env_destroy(&env);
	exit(1);
}

static void
cleanup(void)
{
	if (opened) {
		worker_fini(&w);
		kmsd_close(&d);
		opened = 0;
	}
	tu_env_destroy(&env);
}

/* Dispatch a setup request and return one string field of its reply. */
static void
setup_call(const char *req, const char *obj, const char *field, char *out,
    size_t outlen)
{
	size_t n;
	char *rep = dispatch_bytes(&w, &alice, req, strlen(req), &n);
	json_t *j, *o, *v;

	if (rep == NULL || (j = json_loadb(rep, n, 0, NULL)) == NULL) {
		die(req);
	}
	o = obj != NULL ? json_object_get(j, obj) : j;
	if (json_object_get(j, "__type") != NULL) {
		fprintf(stderr, "%s → %.*s\n", req, (int)n, rep);
		die("request refused");
	}
	if (field != NULL) {
		if (!json_is_string(v = json_object_get(o, field))) {
			die(req);
		}
		snprintf(out, outlen, "%s", json_string_value(v));
	}
	json_decref(j);
	free(rep);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512], req[2048];
	int i;

	if (tu_env_init(&env, NULL) != 0) {
		die("token (run from the repository root, with bin/ built)");
	}
	secure_json_allocator();
	config_defaults(&d.cfg, env.dir);
	if (config_load(&d.cfg, env.conf, err, sizeof(err)) != 0 ||
	    config_finish(&d.cfg, err, sizeof(err)) != 0) {
		die(err);
	}
	/* A small handle cache and a short version life: eviction and
	 * rotation are reached too. */
	d.cfg.key_cache_handles = 16;
	d.cfg.max_encryptions = 50;
	if (kmsd_open(&d, err, sizeof(err)) != 0 ||
	    worker_init(&d, 0, &w, err, sizeof(err)) != 0) {
		die(err);
	}
	opened = 1;
	atexit(cleanup);
	principal_from_uid(&alice, getuid(), getgid(), getpid());
	principal_from_uid(&bob, getuid() + 1, getgid() + 1, getpid());
	for (i = 0; i < 3; i++) {
		snprintf(req, sizeof(req), "{\"Action\":\"CreateKey\","
		    "\"Description\":\"fuzz %d\",\"Tags\":[{\"TagKey\":"
		    "\"team\",\"TagValue\":\"t%d\"}]}", i + 1, i + 1);
		setup_call(req, "KeyMetadata", "KeyId", ph_value[PH_K1 + i],
		    sizeof(ph_value[0]));
	}
	for (i = 0; i < 2; i++) {
		key_arn(&d, ph_value[PH_K1 + i], ph_value[PH_A1 + i],
		    sizeof(ph_value[0]));
		snprintf(req, sizeof(req), "{\"Action\":\"CreateAlias\","
		    "\"AliasName\":\"alias/fuzz-%d\",\"TargetKeyId\":\"%s\"}",
		    i + 1, ph_value[PH_K1 + i]);
		setup_call(req, NULL, NULL, NULL, 0);
	}
	snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGVsbG8=\",\"EncryptionContext\":"
	    "{\"app\":\"fuzz\"}}", ph_value[PH_K1]);
	setup_call(req, NULL, "CiphertextBlob", ph_value[PH_C1],
	    sizeof(ph_value[0]));
	snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"d29ybGQ=\"}", ph_value[PH_K2]);
	setup_call(req, NULL, "CiphertextBlob", ph_value[PH_C2],
	    sizeof(ph_value[0]));
	snprintf(req, sizeof(req), "{\"Action\":\"CreateGrant\",\"KeyId\":"
	    "\"%s\",\"GranteePrincipal\":\"%s\",\"RetiringPrincipal\":\"%s\","
	    "\"Operations\":[\"Encrypt\",\"Decrypt\",\"RetireGrant\"]}",
	    ph_value[PH_K1], bob.name, alice.name);
	setup_call(req, NULL, "GrantId", ph_value[PH_G1], sizeof(ph_value[0]));
	snprintf(req, sizeof(req), "{\"Action\":\"CreateGrant\",\"KeyId\":"
	    "\"%s\",\"GranteePrincipal\":\"%s\",\"RetiringPrincipal\":\"%s\","
	    "\"Operations\":[\"Encrypt\",\"Decrypt\",\"RetireGrant\"]}",
	    ph_value[PH_K1], bob.name, alice.name);
	setup_call(req, NULL, "GrantToken", ph_value[PH_T1],
	    sizeof(ph_value[0]));
	return 0;
}

/* Copy in to out, placeholders replaced while there is room; returns the
 * length written. */
static size_t
expand(const uint8_t *in, size_t len, char *out, size_t cap)
{
	size_t i = 0, o = 0, n;
	int k;

	while (i < len && o < cap) {
		if (in[i] == '@' && len - i >= 4) {
			for (k = 0; k < PH_COUNT; k++) {
				if (memcmp(in + i, ph_name[k], 4) == 0) {
					break;
				}
			}
			if (k < PH_COUNT &&
			    (n = strlen(ph_value[k])) <= cap - o) {
				memcpy(out + o, ph_value[k], n);
				o += n;
				i += 4;
				continue;
			}
		}
		out[o++] = (char)in[i++];
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct principal *p = (size & 1) ? &bob : &alice;
	size_t cap = size + EXPAND_ROOM, n, outlen;
	char *buf, *rep;
	json_t *j, *t, *m;

	if ((buf = malloc(cap)) == NULL) {
		return 0;
	}
	n = expand(data, size, buf, cap);
	rep = dispatch_bytes(&w, p, buf, n, &outlen);
	if (getenv("KMS_FUZZ_VERBOSE") != NULL) {
		fprintf(stderr, "%s %.*s\n→ %.*s\n", p->name, (int)n, buf,
		    (int)outlen, rep != NULL ? rep : "");
	}
	free(buf);
	if (rep == NULL) {
		abort();	/* only out of memory may do this */
	}
	if ((j = json_loadb(rep, outlen, 0, NULL)) == NULL ||
	    !json_is_object(j)) {
		fprintf(stderr, "reply is not a JSON object: %.*s\n",
		    (int)outlen, rep);
		abort();
	}
	if ((t = json_object_get(j, "__type")) != NULL &&
	    (!json_is_string(t) ||
	    !json_is_string(m = json_object_get(j, "message")) ||
	    strcmp(kms_error_name(kms_error_from_name(json_string_value(t))),
	    json_string_value(t)) != 0)) {
		fprintf(stderr, "malformed error reply: %.*s\n", (int)outlen,
		    rep);
		abort();
	}
	json_decref(j);
	free(rep);
	return 0;
}
