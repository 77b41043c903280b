/*
 * test_dist.c — what `make install` ships: it installs into a DESTDIR and
 * uninstalls cleanly, a program built with pkg-config against that root
 * links (shared and static) and talks to a real kmsd, the man pages are
 * clean for mandoc and name every option and command the tools' --help
 * name (and no other), and bash completes kmsctl's commands and
 * parameters from its own help.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

static const char *
bin_dir(void)
{
	return getenv("KMS_BIN_DIR") ? getenv("KMS_BIN_DIR") : "bin";
}

static const char *
sanitize_flags(void)
{
	const char *b = getenv("BUILD");

	return b != NULL && strstr(b, "asan") != NULL ?
	    "-fsanitize=address,undefined" : "";
}

/* make's variables for this build (plain or ASan). */
static void
make_vars(char *buf, size_t len)
{
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	const char *lib = getenv("LIB") ? getenv("LIB") : "lib";

	snprintf(buf, len, "BUILD=%s BIN=%s LIB=%s", build, bin_dir(), lib);
}

static void
test_install_then_a_pkg_config_program_talks_to_kmsd(void **state)
{
	char root[] = "/tmp/kms-root-XXXXXX", vars[512], cmd[4096];
	char *out = NULL;
	struct tu_env e;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(root));
	make_vars(vars, sizeof(vars));
	snprintf(cmd, sizeof(cmd), "make -s %s install DESTDIR=%s PREFIX=/usr "
	    ">/dev/null", vars, root);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	snprintf(cmd, sizeof(cmd), "cd %s && test -x usr/bin/kmsd && "
	    "test -x usr/bin/kmsctl && test -L usr/lib/libkmsclient.so && "
	    "test -f usr/lib/libkmsclient.so.1 && test -f usr/include/kms.h "
	    "&& test -f usr/share/man/man8/kmsd.8 && "
	    "test -f usr/share/man/man5/kmsd.conf.5 && "
	    "test -f usr/lib/systemd/system/kmsd.service && "
	    "test -f usr/share/bash-completion/completions/kmsctl && "
	    "test -f etc/kmsd/kmsd.conf && "
	    "grep -q 'ExecStart=/usr/bin/kmsd --config /etc/kmsd/kmsd.conf' "
	    "usr/lib/systemd/system/kmsd.service && "
	    "readelf -d usr/lib/libkmsclient.so.1 | grep -q "
	    "'SONAME.*libkmsclient.so.1'", root);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);

	snprintf(cmd, sizeof(cmd), "%s/app.c", root);
	assert_non_null(f = fopen(cmd, "w"));
	fputs("#include <stdio.h>\n#include <kms.h>\n"
	    "int main(void) {\n"
	    "\tkms_client *c; kms_secret s; kms_error_info ei;\n"
	    "\tif (kms_client_open(&c, NULL) != 0) return 1;\n"
	    "\tif (kms_generate_random(c, 16, &s, &ei) != 0) {\n"
	    "\t\tfprintf(stderr, \"%s: %s\\n\", ei.name, ei.message);\n"
	    "\t\treturn 2;\n\t}\n"
	    "\tprintf(\"%zu\\n\", s.len);\n"
	    "\tkms_secret_free(&s); kms_client_close(c); return 0;\n}\n", f);
	assert_int_equal(fclose(f), 0);

	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	/* Shared, then static (pkg-config --static adds the private libs). */
	/* --define-prefix: the prefix is where the .pc file was found. */
	snprintf(cmd, sizeof(cmd), "export PKG_CONFIG_PATH=%s/usr/lib/pkgconfig; "
	    "pc() { pkg-config --define-prefix \"$@\"; }; "
	    "cc %s -o %s/app-so %s/app.c $(pc --cflags --libs kmsclient) && "
	    "LD_LIBRARY_PATH=%s/usr/lib KMS_ENDPOINT=%s %s/app-so && "
	    "cc %s -static-libgcc -o %s/app-a %s/app.c $(pc --cflags kmsclient) "
	    "%s/usr/lib/libkmsclient.a $(pc --static --libs-only-l kmsclient "
	    "| sed 's/-lkmsclient//') && KMS_ENDPOINT=%s %s/app-a 2>&1", root,
	    sanitize_flags(), root, root, root, e.endpoint, root,
	    sanitize_flags(), root, root, root, e.endpoint, root);
	if (tu_run(cmd, &out, NULL) != 0) {
		fprintf(stderr, "%s\n", out != NULL ? out : "");
		fail_msg("building or running against the installed root");
	}
	assert_string_equal(out, "16\n16\n");
	free(out);
	assert_int_equal(tu_env_destroy(&e), 0);

	/* Uninstall removes what install put there, not the configuration. */
	snprintf(cmd, sizeof(cmd), "make -s %s uninstall DESTDIR=%s PREFIX=/usr "
	    ">/dev/null && cd %s && rm -f app.c app-so app-a && "
	    "find . -type f | sort", vars, root, root);
	assert_int_equal(tu_run(cmd, &out, NULL), 0);
	assert_string_equal(out, "./etc/kmsd/kmsd.conf\n");
	free(out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	assert_int_equal(system(cmd), 0);
}

static void
test_man_pages_are_clean(void **state)
{
	char *out = NULL;

	(void)state;
	if (tu_run("command -v mandoc", NULL, NULL) != 0) {
		skip();
	}
	if (tu_run("mandoc -T lint -W warning man/*.[1358] 2>&1", &out,
	    NULL) != 0) {
		fprintf(stderr, "%s", out);
		fail_msg("mandoc -T lint found problems");
	}
	free(out);
}

/*
 * The --long options in a tool's --help and in its man page (.Fl) are the
 * same set; names prints what one has and the other lacks.
 */
static void
options_agree(const char *help_cmd, const char *page, const char *section)
{
	char cmd[2048], *out = NULL;

	snprintf(cmd, sizeof(cmd), "diff <({ %s; } 2>&1 | grep -o -- "
	    "'--[a-z][a-z0-9-]*' | sort -u) <(sed -n '%s' %s | grep -o "
	    "'Fl -[a-z][a-z0-9-]*' | sed 's/^Fl -/--/' | sort -u)", help_cmd,
	    section, page);
	{
		char wrapped[2300];
		snprintf(wrapped, sizeof(wrapped), "bash -c \"%s\"", cmd);
		if (tu_run(wrapped, &out, NULL) != 0) {
			fprintf(stderr, "%s --help vs %s:\n%s", help_cmd, page,
			    out != NULL ? out : "");
			fail_msg("options differ");
		}
	}
	free(out);
}

static void
test_help_and_man_pages_name_the_same_options(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "%s/kmsd --help", bin_dir());
	options_agree(cmd, "man/kmsd.8", "p");
	snprintf(cmd, sizeof(cmd), "%s/kms-bench --help", bin_dir());
	options_agree(cmd, "man/kms-bench.1", "p");
	/* kmsctl: its global options (parameters are per command). */
	snprintf(cmd, sizeof(cmd), "%s/kmsctl help | sed -n "
	    "'/^Global options/,/^Blob parameters/p'; echo --help "
	    "--endpoint-url --no-cli-pager --no-paginate", bin_dir());
	options_agree(cmd, "man/kmsctl.1",
	    "/^The global options/,/^The commands are/p");
}

static void
test_kmsctl_man_page_lists_every_command(void **state)
{
	char cmd[1024], *out = NULL;

	(void)state;
	snprintf(cmd, sizeof(cmd), "bash -c \"diff <(%s/kmsctl help | awk "
	    "'/^Commands:/ { c = 1; next } c && /^  [a-z]/ { print \\$1 } "
	    "c && /^$/ { exit }' | sort -u) <(grep '^.It Cm ' man/kmsctl.1 | "
	    "awk '{ print \\$3 }' | sort -u)\"", bin_dir());
	if (tu_run(cmd, &out, NULL) != 0) {
		fprintf(stderr, "kmsctl help vs kmsctl.1:\n%s", out);
		fail_msg("commands differ");
	}
	free(out);
}

/* Every key kmsd.conf takes (the parser's own list) is in kmsd.conf(5). */
static void
test_kmsd_conf_page_names_every_key(void **state)
{
	char *out = NULL;

	(void)state;
	if (tu_run("bash -c \"comm -23 <(grep -o 'strcmp(k, \\\"[a-z_0-9]*\\\")' "
	    "kmsd/daemon/config.c | cut -d'\\\"' -f2 | sort -u) "
	    "<(grep '^.It Cm ' man/kmsd.conf.5 | grep -o 'Cm [a-z_0-9]*' | "
	    "awk '{ print \\$2 }' | sort -u)\"", &out, NULL) != 0) {
		fail_msg("comm failed");
	}
	if (out[0] != '\0') {
		fprintf(stderr, "keys missing from kmsd.conf.5:\n%s", out);
		fail_msg("kmsd.conf(5) lacks keys");
	}
	free(out);
}

static void
test_bash_completes_commands_and_parameters(void **state)
{
	char cmd[2048], *out = NULL;

	(void)state;
	snprintf(cmd, sizeof(cmd), "bash -c 'source "
	    "dist/kmsctl.bash-completion; PATH=%s:$PATH; "
	    "COMP_WORDS=(kmsctl generate-r); COMP_CWORD=1; _kmsctl; "
	    "echo ${COMPREPLY[@]}; "
	    "COMP_WORDS=(kmsctl --output json encrypt --plain); COMP_CWORD=4; "
	    "_kmsctl; echo ${COMPREPLY[@]}; "
	    "COMP_WORDS=(kmsctl adm); COMP_CWORD=1; _kmsctl; "
	    "echo ${COMPREPLY[@]}; "
	    "COMP_WORDS=(kmsctl admin \"\"); COMP_CWORD=2; _kmsctl; "
	    "echo ${COMPREPLY[@]}; "
	    "COMP_WORDS=(kmsctl --output json audit \"\"); COMP_CWORD=4; "
	    "_kmsctl; echo ${COMPREPLY[@]}; "
	    "COMP_WORDS=(kmsctl admin backup --inc); COMP_CWORD=3; _kmsctl; "
	    "echo ${COMPREPLY[@]}; "
	    "COMP_WORDS=(kmsctl audit verify --pub); COMP_CWORD=3; _kmsctl; "
	    "echo ${COMPREPLY[@]}; "
	    "COMP_WORDS=(kmsctl audit query --pub); COMP_CWORD=3; _kmsctl; "
	    "echo ${COMPREPLY[@]}'", bin_dir());
	assert_int_equal(tu_run(cmd, &out, NULL), 0);
	/* Two-word commands: the subcommand, then its own parameters
	 * (audit query has no --public-key, audit verify has). */
	assert_string_equal(out, "generate-random\n--plaintext\nadmin\n"
	    "advance-clock backup rotate-domain-key status\n"
	    "public-key query verify\n--include-pins\n--public-key\n\n");
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_install_then_a_pkg_config_program_talks_to_kmsd),
		cmocka_unit_test(test_man_pages_are_clean),
		cmocka_unit_test(test_help_and_man_pages_name_the_same_options),
		cmocka_unit_test(test_kmsctl_man_page_lists_every_command),
		cmocka_unit_test(test_kmsd_conf_page_names_every_key),
		cmocka_unit_test(test_bash_completes_commands_and_parameters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
