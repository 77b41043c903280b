/*
 * test_kmsctl_commands.c — kmsctl's command table against the code that
 * reads it.  Every command of the table is run in-process with every
 * option it declares given a well-formed value, against an endpoint where
 * no daemon listens: the command must read only options it declares
 * (opt() aborts on any other name, which fails this test), and end with
 * an exit status, not a crash.  Also: names are unique, every command has
 * a function, a summary and an operation, and an undeclared name aborts.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

/* Before cmocka.h, whose fail() macro would take kmsctl.h's fail(). */
#include "common/secmem.h"
#include "tools/kmsctl/kmsctl.h"

#include <cmocka.h>

#define ABSENT_ENDPOINT "ipc:///nonexistent/kmsctl-test/kmsd.sock"

/* One well-formed value per kind of option. */
static char *list_word[] = { "alias/x" };
static char *tag_word[] = { "TagKey=a,TagValue=b" };

static void
fill(struct run *R, const struct command *c)
{
	int i;

	memset(R, 0, sizeof(*R));
	R->cmd = c;
	R->output = "json";
	for (i = 0; i < MAX_OPTS && c->opts[i].name != NULL; i++) {
		struct optval *v = &R->v[i];
		v->set = 1;
		switch (c->opts[i].kind) {
		case O_INT:
			v->val = "1";
			break;
		case O_BLOB:
			v->val = "AAAA";
			break;
		case O_CTX:
			v->val = "a=b";
			break;
		case O_LIST:
			v->list = list_word;
			v->nlist = 1;
			v->val = list_word[0];
			break;
		case O_TAGS:
			v->list = tag_word;
			v->nlist = 1;
			v->val = tag_word[0];
			break;
		case O_FLAG:
			v->flag = 1;
			break;
		case O_CONSTRAINTS:
			v->val = "EncryptionContextSubset={a=b}";
			break;
		default:	/* O_STR, O_POS: also a path that is not there */
			v->val = "/nonexistent/kmsctl-test";
			break;
		}
	}
}

/* Run c in a child (its output to /dev/null); the child's wait status. */
static int
run_child(const struct command *c)
{
	struct run R;
	pid_t pid;
	int st = 0, null;

	if ((pid = fork()) == 0) {
		if ((null = open("/dev/null", O_WRONLY)) >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		fill(&R, c);
		if (kms_client_open(&R.c, ABSENT_ENDPOINT) != 0) {
			_exit(99);
		}
		kms_client_set_connect_timeout(R.c, 200);
		kms_client_set_timeout(R.c, 2000);
		_exit(c->fn(&R) & 0xff);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void
test_every_command_reads_only_declared_options(void **state)
{
	const struct command *c;
	size_t i;
	int st;

	(void)state;
	for (i = 0; (c = command_at(i)) != NULL; i++) {
		st = run_child(c);
		if (!WIFEXITED(st)) {
			fail_msg("%s: killed by signal %d (an option read "
			    "that the command does not declare?)", c->name,
			    WIFSIGNALED(st) ? WTERMSIG(st) : -1);
		}
		if (WEXITSTATUS(st) == 99) {
			fail_msg("%s: no client", c->name);
		}
	}
	assert_true(i > 40);
}

static void
test_table_is_well_formed(void **state)
{
	const struct command *c, *d;
	size_t i, j;
	int k, m;

	(void)state;
	for (i = 0; (c = command_at(i)) != NULL; i++) {
		assert_non_null(c->fn);
		assert_non_null(c->op);
		assert_non_null(c->summary);
		assert_ptr_equal(find_command(c->name), c);
		for (j = i + 1; (d = command_at(j)) != NULL; j++) {
			assert_string_not_equal(c->name, d->name);
		}
		for (k = 0; k < MAX_OPTS && c->opts[k].name != NULL; k++) {
			assert_int_equal(opt_index(c, c->opts[k].name), k);
			assert_non_null(c->opts[k].help);
			for (m = k + 1; m < MAX_OPTS &&
			    c->opts[m].name != NULL; m++) {
				assert_string_not_equal(c->opts[k].name,
				    c->opts[m].name);
			}
		}
	}
	assert_null(find_command("no-such-command"));
}

/* opt() with a name the command does not declare aborts. */
static void
test_undeclared_option_aborts(void **state)
{
	const struct command *c = find_command("describe-key");
	struct run R;
	pid_t pid;
	int st = 0, null;

	(void)state;
	assert_non_null(c);
	fill(&R, c);
	assert_non_null(opt(&R, "key-id"));
	if ((pid = fork()) == 0) {
		if ((null = open("/dev/null", O_WRONLY)) >= 0) {
			dup2(null, 2);
		}
		(void)opt(&R, "kye-id");
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_is_well_formed),
		cmocka_unit_test(test_undeclared_option_aborts),
		cmocka_unit_test(test_every_command_reads_only_declared_options),
	};

	secure_json_allocator();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
