/*
 * main.c — kmsd's command line.
 *
 *   kmsd [-c FILE] [--state-dir DIR]        serve (foreground)
 *   kmsd ... --check-config                 validate and exit
 *   kmsd ... --create-domain-key            token set-up (scripts/hsm-init)
 *   kmsd ... credentials add|list|remove    SigV4 access keys (HTTP)
 *   kmsd --restore BACKUP --state-dir NEW   restore a backup, exit
 *
 * Without -c, DIR/kmsd.conf is read when it exists (DIR defaults to ./var),
 * else the embedded defaults apply.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>


#include "common/err.h"
#include "common/log.h"
#include "common/secmem.h"
#include "kms.h"
#include "kmsd/daemon/backup.h"
#include "kmsd/daemon/daemon.h"
#include "kmsd/frontend/credentials.h"
#include "kmsd/frontend/ipc.h"
#include "kmsd/kmsd.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: kmsd [-c FILE] [--state-dir DIR] [--check-config | "
	    "--create-domain-key]\n"
	    "  -c, --config FILE      config file (default DIR/kmsd.conf if "
	    "present)\n"
	    "      --state-dir DIR    state directory (default ./var)\n"
	    "      --check-config     validate the configuration and exit\n"
	    "      --create-domain-key  create the domain key in the token if "
	    "absent\n"
	    "      --init-token SO_PIN_FILE  initialise a free token with the "
	    "configured\n"
	    "                         label and user PIN file (token set-up)\n"
	    "      --restore BACKUP   check a backup and restore it into "
	    "--state-dir\n"
	    "                         (a new or empty directory), then exit\n"
	    "  -h, --help             print this help and exit\n"
	    "      --version          print the version and exit\n"
	    "  credentials add [--principal P] [--secret-stdin] | list | "
	    "remove ID\n"
	    "                         manage the HTTP endpoint's SigV4 access "
	    "keys\n");
}

/* No core files, no ptrace by others: the process holds secrets. */
static void
harden(void)
{
	struct rlimit rl = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* As much locked memory as we are allowed: secrets live in it. */
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_MEMLOCK, &rl);
	}
	/* A file size limit (RLIMIT_FSIZE) reached by the store fails that
	 * write (EFBIG), like a full disk, and the request says so; the
	 * default action would kill the daemon and every request with it. */
	(void)signal(SIGXFSZ, SIG_IGN);
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "create-domain-key", no_argument, NULL, 'D' },
		{ "init-token", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "restore", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kmsd d;
	const char *conf = NULL, *state_dir = NULL;
	char err[1024], defconf[CONFIG_PATH_MAX + 16];
	const char *so_pin_file = NULL, *restore = NULL;
	int ch, check = 0, create_dk = 0, r;

	/* '+': options end at the first word (credentials ...). */
	while ((ch = getopt_long(argc, argv, "+c:h", lopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'S':
			state_dir = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'D':
			create_dk = 1;
			break;
		case 'I':
			so_pin_file = optarg;
			break;
		case 'R':
			restore = optarg;
			break;
		case 'V':
			printf("kmsd %s\n", KMS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc && strcmp(argv[optind], "credentials") != 0) {
		usage(stderr);
		return 2;
	}
	harden();
	if (restore != NULL) {
		if (state_dir == NULL) {
			fprintf(stderr, "kmsd: --restore needs --state-dir NEW "
			    "(a new or empty directory)\n");
			return 2;
		}
		if (backup_restore(restore, state_dir, err, sizeof(err)) != 0) {
			fprintf(stderr, "kmsd: restore refused: %s\n", err);
			return 1;
		}
		return 0;
	}
#if defined(__SANITIZE_ADDRESS__)
	/* Without kmsd/heapwipe.c (compiled out under ASan), jansson's
	 * blocks are wiped by its allocator instead. */
	secure_json_allocator();
#endif
	config_defaults(&d.cfg, state_dir);
	err[0] = '\0';
	if (conf == NULL) {
		snprintf(defconf, sizeof(defconf), "%s/kmsd.conf",
		    d.cfg.state_dir);
		if (access(defconf, F_OK) == 0) {
			conf = defconf;
			/* Whoever may write the directory may have put the
			 * file there. */
			if (config_check_trust("state_dir", d.cfg.state_dir, 0,
			    err, sizeof(err)) != 0) {
				log_error("%s", err);
				return 1;
			}
		}
	}
	if ((conf != NULL && config_load(&d.cfg, conf, err,
	    sizeof(err)) != 0) || config_finish(&d.cfg, err,
	    sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	log_open("kmsd", d.cfg.log_level, d.cfg.log_syslog);
	if (optind != argc) {
		return creds_command(d.cfg.http_credentials, argc - optind - 1,
		    argv + optind + 1);
	}
	if (so_pin_file == NULL && !check && !create_dk) {
		log_info("kmsd %s starting (config: %s)", KMS_VERSION,
		    conf != NULL ? conf : "embedded defaults");
	}
	if (conf != NULL) {
		snprintf(d.cfg.config_path, sizeof(d.cfg.config_path), "%s",
		    conf);
	}
	if (so_pin_file != NULL) {
		if (config_check_trust("SO PIN file", so_pin_file, 1, err,
		    sizeof(err)) != 0) {
			log_error("%s", err);
			return 1;
		}
		if (d.cfg.softhsm2_conf[0] != '\0') {
			setenv("SOFTHSM2_CONF", d.cfg.softhsm2_conf, 1);
		}
		r = hsm_init_token(d.cfg.pkcs11_module, d.cfg.token_label,
		    so_pin_file, d.cfg.pin_file, err, sizeof(err));
		if (r == KMS_EALREADYEXISTS) {
			return 0;
		}
		if (r != 0) {
			log_error("%s", err);
			return 1;
		}
		printf("kmsd: token \"%s\" initialised\n", d.cfg.token_label);
		return 0;
	}
	if (check) {
		printf("kmsd: configuration OK (%s)\n",
		    conf != NULL ? conf : "embedded defaults");
		return 0;
	}
	if (d.cfg.softhsm2_conf[0] != '\0') {
		setenv("SOFTHSM2_CONF", d.cfg.softhsm2_conf, 1);
	}
	if (create_dk) {
		struct hsm_config hc = { d.cfg.pkcs11_module,
			d.cfg.token_label, d.cfg.pin_file, 1 };
		hsm *h = NULL;
		if ((r = hsm_open(&hc, &h, err, sizeof(err))) != 0) {
			log_error("%s", err);
			return 1;
		}
		hsm_close(h);
		return 0;
	}
	if (d.cfg.test_clock) {
		log_warn("**** test_clock = yes: TEST-ONLY SETTING. Any "
		    "administrator can move this kmsd's clock forward "
		    "(AdvanceTestClock), making keys rotate and be DELETED "
		    "at once. Never use it with keys you want to keep. ****");
	}
	if ((r = kmsd_open(&d, err, sizeof(err))) != 0) {
		log_error("%s", err);
		return 1;
	}
	r = server_run(&d, err, sizeof(err));
	if (r != 0) {
		log_error("%s", err);
	}
	kmsd_close(&d);
	return r == 0 ? 0 : 1;
}
