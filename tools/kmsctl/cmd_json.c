/*
 * cmd_json.c — the commands built as JSON from the command table (policy,
 * grant, alias, tag, lifecycle and admin commands: each option names its
 * request field), paging as the AWS CLI does, and `call`, which sends a
 * raw JSON request.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kms.h"
#include "common/b64.h"
#include "common/json.h"
#include "common/secmem.h"
#include "tools/kmsctl/kmsctl.h"
#include "tools/kmsctl/shorthand.h"

/* ------------------------------------------------- commands sent as JSON */

/*
 * The policy, grant, alias and tag commands have no typed call in
 * libkmsclient: each option names its request field, the request is built
 * as JSON and sent with kms_call_json, and the reply (already shaped as
 * AWS's) is printed with its dates made ISO 8601 as the AWS CLI shows them.
 */

/* Set one option's request field. */
static int
put_field(json_t *req, const struct optspec *s, const struct optval *v)
{
	struct tagarg tags;
	const char *text;
	char *hold = NULL;
	json_t *x = NULL;
	long n;
	size_t i;
	int r;

	switch (s->kind) {
	case O_POS:
	case O_STR:
		if ((r = load_text(v->val, &text, &hold, s->name)) != 0) {
			return r;
		}
		x = json_string(text);
		free(hold);
		break;
	case O_INT:
		if ((r = parse_long(v->val, 0, INT_MAX, &n, s->name)) != 0) {
			return r;
		}
		x = json_integer(n);
		break;
	case O_FLAG:
		x = json_boolean(v->flag);
		break;
	case O_BLOB: {
		kms_secret b = { NULL, 0 };
		size_t bn;
		char *t;
		if ((r = load_blob(v->val, &b, s->name)) != 0) {
			return r;
		}
		bn = B64_ENCODED_LEN(b.len) + 1;
		if ((t = malloc(bn)) != NULL &&
		    b64_encode(b.data, b.len, t, bn) == 0) {
			x = json_string(t);
		}
		free(t);
		kms_secret_free(&b);
		break;
	}
	case O_LIST:
		if ((r = list_json(v, s->name, &x)) != 0) {
			return r;
		}
		break;
	case O_CONSTRAINTS:
		if ((r = constraints_json(v->val, &x)) != 0) {
			return r;
		}
		break;
	case O_TAGS:
		if ((r = parse_tags(v, &tags)) != 0) {
			return r;
		}
		x = json_array();
		for (i = 0; i < tags.ntags; i++) {
			json_array_append_new(x, json_pack("{ssss}", "TagKey",
			    tags.tags[i].key, "TagValue", tags.tags[i].value));
		}
		tagarg_free(&tags);
		break;
	default:
		return EXIT_OTHER;
	}
	if (x == NULL || json_object_set_new(req, s->field, x) != 0) {
		fprintf(stderr, "kmsctl: out of memory\n");
		return EXIT_OTHER;
	}
	return 0;
}

/* Send req; the parsed reply in *out, or an exit status. */
int
send_json(const struct run *R, const json_t *req, json_t **out)
{
	kms_error_info ei;
	char *text, *reply = NULL, msg[128];
	size_t n = 0;
	int r, err;

	if ((text = json_dumps(req, JSON_COMPACT)) == NULL) {
		return EXIT_OTHER;
	}
	r = kms_call_json(R->c, text, strlen(text), &reply, &n, &ei);
	secure_wipe(text, strlen(text));
	free(text);
	if (r != 0) {
		kms_free(reply);
		return fail(R, r, &ei);
	}
	*out = kjson_read_bounded(reply, n, JSON_MAX_REPLY, &err, msg,
	    sizeof(msg));
	kms_free(reply);
	if (*out == NULL) {
		fprintf(stderr, "kmsctl: unreadable reply: %s\n", msg);
		return EXIT_OTHER;
	}
	return 0;
}

int
cmd_json(struct run *R)
{
	json_t *req, *reply = NULL, *all = NULL, *page;
	const char *next;
	int i, r, paginate;

	if ((req = json_pack("{ss}", "Action", R->cmd->op)) == NULL) {
		return EXIT_OTHER;
	}
	for (i = 0; i < MAX_OPTS && R->cmd->opts[i].name != NULL; i++) {
		if (R->v[i].set && R->cmd->opts[i].field != NULL &&
		    (r = put_field(req, &R->cmd->opts[i], &R->v[i])) != 0) {
			json_decref(req);
			return r;
		}
	}
	/* As the AWS CLI: every page, unless one page was asked for. */
	paginate = R->cmd->pages != NULL && opt(R, "limit") == NULL;
	for (;;) {
		if ((r = send_json(R, req, &reply)) != 0) {
			json_decref(req);
			json_decref(all);
			return r;
		}
		if (!paginate) {
			break;
		}
		page = json_object_get(reply, R->cmd->pages);
		if (all == NULL) {
			all = json_array();
		}
		if (json_is_array(page)) {
			json_array_extend(all, page);
		}
		next = json_string_value(json_object_get(reply,
		    "NextMarker"));
		if (!json_is_true(json_object_get(reply, "Truncated")) ||
		    next == NULL) {
			json_object_set_new(reply, R->cmd->pages, all);
			json_object_del(reply, "Truncated");
			json_object_del(reply, "NextMarker");
			break;
		}
		json_object_set_new(req, "Marker", json_string(next));
		json_decref(reply);
	}
	json_decref(req);
	iso_dates(reply);
	return emit(R, reply, NULL, NULL, 0);
}

int
cmd_call(struct run *R)
{
	kms_error_info ei;
	kms_secret file = { NULL, 0 };
	const char *req = opt_str(R, "request");
	char *reply = NULL, msg[128], action[64] = "raw";
	size_t n = 0, len;
	json_t *j;
	int r, err;

	if (strncmp(req, "file://", 7) == 0) {
		if ((r = read_file(req + 7, &file, "request")) != 0) {
			return r;
		}
		req = (const char *)file.data;
		len = file.len;
	} else {
		len = strlen(req);
	}
	/* The operation's name, for the error line. */
	if ((j = json_loadb(req, len, 0, NULL)) != NULL &&
	    json_is_string(json_object_get(j, "Action"))) {
		snprintf(action, sizeof(action), "%s",
		    json_string_value(json_object_get(j, "Action")));
	}
	json_decref(j);
	r = kms_call_json(R->c, req, len, &reply, &n, &ei);
	input_free(&file);
	if (r != 0) {
		struct run E = *R;
		struct command c = *R->cmd;
		c.op = action;
		E.cmd = &c;
		kms_free(reply);
		return fail(&E, r, &ei);
	}
	j = kjson_read_bounded(reply, n, JSON_MAX_REPLY, &err, msg,
	    sizeof(msg));
	kms_free(reply);
	if (j == NULL) {
		fprintf(stderr, "kmsctl: unreadable reply: %s\n", msg);
		return EXIT_OTHER;
	}
	return emit(R, j, NULL, NULL, 0);
}
