# kmsd — one Makefile, one pattern rule, object lists per component.
# Targets: all run test asan fuzz bench install clean.

PREFIX	?= /usr/local
BUILD	?= build
BIN	?= bin
LIB	?= lib
CC	?= cc
PKGS	:= libsodium jansson sqlite3 libcrypto
WARN	:= -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
	   -Wno-format-truncation
HARDEN	:= -D_FORTIFY_SOURCE=2 -fstack-protector-strong
OPT	?= -O2 -g
CFLAGS	+= -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) -fPIC \
	   -fvisibility=hidden -I. -Iinclude -MMD -MP
CFLAGS	+= -I/usr/include/p11-kit-1
LDLIBS	:= -lnng $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldl -lpthread
# The daemon's HTTP(S) endpoint only (kmsd and the tests that link it).
HTTP_PKGS := libmicrohttpd gnutls
HTTP_LIBS := $(shell pkg-config --libs $(HTTP_PKGS) 2>/dev/null)
# kms-bench's HTTP client (--endpoint https://…).
CURL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=undefined

COMMON_SRC := $(wildcard common/*.c)
HSM_SRC    := $(wildcard hsm/*.c)
POLICY_SRC := $(wildcard policy/*.c)
KMSD_MAIN  := kmsd/daemon/main.c kmsd/daemon/heapwipe.c
KMSD_SRC   := $(filter-out $(KMSD_MAIN),$(wildcard kmsd/*/*.c))
CLIENT_SRC := $(wildcard libkmsclient/*.c)
# Tests by kind: unit/ (no token, no daemon), hsm/ (a real SoftHSM2 token),
# daemon/ (a real kmsd on a real token, through its clients).
TEST_SRC   := $(wildcard tests/unit/test_*.c tests/hsm/test_*.c \
	tests/daemon/test_*.c)
SHIM_SRC   := $(wildcard tests/p11shim/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBCOMMON := $(BUILD)/libcommon.a
LIBHSM    := $(BUILD)/libhsm.a
LIBPOLICY := $(BUILD)/libpolicy.a
LIBKMSD   := $(BUILD)/libkmsd.a
# The client library is built into lib/ (the public artefact) and, for
# tests, linked statically from the same objects.
CLIENT_A  := $(LIB)/libkmsclient.a
CLIENT_SO := $(LIB)/libkmsclient.so
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
SHIM_SO   := $(BUILD)/tests/libp11shim.so
TOOLS     := $(BIN)/kmsctl $(BIN)/kms-bench $(BIN)/kms-drill

.PHONY: all run test check asan fuzz fuzz-bins fuzz-check crash-full bench \
	install uninstall clean deps tests drill
all: $(BIN)/kmsd $(TOOLS) $(CLIENT_SO) $(CLIENT_A) kmsclient.pc

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBHSM): $(call obj,$(HSM_SRC))
$(LIBPOLICY): $(call obj,$(POLICY_SRC))
$(LIBKMSD): $(call obj,$(KMSD_SRC))
$(LIBCOMMON) $(LIBHSM) $(LIBPOLICY) $(LIBKMSD):
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The public archive exports only kms_*: its objects are linked into one
# relocatable object whose hidden (internal) symbols are made local, so an
# application linking it with other libraries never gets our b64_encode or
# blob_uuid_parse instead of its own (nor the other way round).  The shared
# library does the same with a version script.
CLIENT_OBJS := $(call obj,$(CLIENT_SRC)) $(call obj,$(COMMON_SRC))
$(CLIENT_A): $(CLIENT_OBJS)
	@mkdir -p $(LIB) $(BUILD)/libkmsclient-a
	$(LD) -r -o $(BUILD)/libkmsclient-a/kmsclient.o $^
	objcopy --localize-hidden $(BUILD)/libkmsclient-a/kmsclient.o
	rm -f $@ && ar rcs $@ $(BUILD)/libkmsclient-a/kmsclient.o
# kmsd's own tools and tests link the library's objects as they are (they
# share common/ with it), from an internal archive.
CLIENT_INT := $(BUILD)/libkmsclient-int.a
$(CLIENT_INT): $(call obj,$(CLIENT_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(CLIENT_SO): $(CLIENT_OBJS) libkmsclient/libkmsclient.map
	@mkdir -p $(LIB)
	$(CC) $(CFLAGS) -shared -Wl,-soname,libkmsclient.so.1 \
		-Wl,--version-script=libkmsclient/libkmsclient.map \
		-o $@ $(CLIENT_OBJS) $(LDFLAGS) $(LDLIBS)

kmsclient.pc: Makefile
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: kmsclient\nDescription: kmsd client library\nVersion: 0.1.0\nRequires.private: libsodium jansson libcrypto\nLibs: -L$${libdir} -lkmsclient\nLibs.private: -lpthread\nCflags: -I$${includedir}\n' '$(PREFIX)' > $@

DAEMON_LIBS := $(LIBKMSD) $(LIBPOLICY) $(LIBHSM) $(LIBCOMMON)
# The daemon alone tells systemd when it is ready (sd_notify).
KMSD_LDLIBS := $(shell pkg-config --libs libsystemd 2>/dev/null)
# kmsd/daemon/heapwipe.c replaces free() and realloc() in the daemon only.
$(BIN)/kmsd: $(call obj,$(KMSD_MAIN)) $(DAEMON_LIBS)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(HTTP_LIBS) $(LDLIBS) $(KMSD_LDLIBS)

$(BIN)/kmsctl: $(call obj,$(wildcard tools/kmsctl/*.c)) $(CLIENT_INT) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BIN)/kms-drill: $(call obj,tools/drill.c) $(CLIENT_A)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# kms-bench links the hsm layer and kmsd's config reader too, for
# --baseline hsm.
$(BIN)/kms-bench: $(call obj,$(wildcard tools/bench*.c) tools/proc.c kmsd/daemon/config.c) $(CLIENT_INT) \
    $(LIBHSM) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(HTTP_LIBS) $(CURL_LIBS) $(LDLIBS)

$(SHIM_SO): $(call obj,$(SHIM_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $^ -ldl -lpthread

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/testutil.o $(BUILD)/tools/proc.o \
    $(CLIENT_INT) $(DAEMON_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(HTTP_LIBS) $(LDLIBS) $(KMSD_LDLIBS)

# kmsctl's shorthand parsers, unit-tested and fuzzed without the rest of
# kmsctl; its command table tested with all of kmsctl but main().
KMSCTL_SHORTHAND := $(call obj,tools/kmsctl/shorthand.c tools/kmsctl/input.c)
KMSCTL_NOMAIN := $(call obj,$(filter-out tools/kmsctl/kmsctl.c,\
    $(wildcard tools/kmsctl/*.c)))
$(BUILD)/tests/unit/test_shorthand: $(BUILD)/tests/unit/test_shorthand.o \
    $(KMSCTL_SHORTHAND) $(CLIENT_INT) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LDLIBS)
$(BUILD)/tests/unit/test_kmsctl_commands: $(BUILD)/tests/unit/test_kmsctl_commands.o \
    $(KMSCTL_NOMAIN) $(CLIENT_INT) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LDLIBS)

tests: all $(TEST_BINS) $(SHIM_SO)

deps:
	scripts/install-deps

# `make run`: dependencies, token on first use, kmsd in the foreground.
run: deps
	$(MAKE) all
	scripts/hsm-init var
	exec bin/kmsd

# `make test`: the whole suite, plain and under ASan+UBSan, then every
# fuzz harness for a short time.
ASAN_VARS := BUILD=build-asan BIN=build-asan/bin LIB=build-asan/lib \
	OPT="-O1 -g $(SANFLAGS)" LDFLAGS="$(SANFLAGS)"
test: deps
	$(MAKE) check
	$(MAKE) $(ASAN_VARS) check
	$(MAKE) fuzz-check

check: tests
	BUILD=$(BUILD) BIN=$(BIN) tests/run-all
	BUILD=$(BUILD) KMS_BIN_DIR=$(BIN) scripts/drill 1000

# `make drill`: the rotation drill at a small size (scripts/drill N for
# another).
drill: tests
	BUILD=$(BUILD) KMS_BIN_DIR=$(BIN) scripts/drill 2000

asan:
	$(MAKE) $(ASAN_VARS) check

# `make fuzz`: every libFuzzer harness in tests/fuzz/ built with clang into
# build-fuzz/fuzz/ (the daemon's code instrumented, linked as the tests
# link it).  `make fuzz-check`: each harness for a bounded time over its
# seeds, after replaying its regression inputs (tests/run-fuzz).
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_VARS := BUILD=build-fuzz BIN=build-fuzz/bin LIB=build-fuzz/lib CC=clang \
	OPT="-O1 -g $(SANFLAGS) -fsanitize=fuzzer-no-link" \
	WARN="$(WARN) -Wno-unknown-warning-option"
fuzz:
	$(MAKE) $(FUZZ_VARS) fuzz-bins

fuzz-bins: $(FUZZ_BINS)
.SECONDARY: $(call obj,$(FUZZ_SRC) tests/testutil.c)

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/testutil.o \
    $(KMSCTL_SHORTHAND) $(CLIENT_INT) $(DAEMON_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(HTTP_LIBS) -lcmocka \
		$(LDLIBS)

fuzz-check: all
	$(MAKE) fuzz
	tests/run-fuzz

# `make crash-full`: the crash-consistency test at full size (50 kills of
# a larger workload: more threads, keys and aliases, longer cycles;
# KMS_CRASH_KILLS and KMS_CRASH_SCALE override).
crash-full: tests
	KMS_CRASH_KILLS=$${KMS_CRASH_KILLS:-50} \
	KMS_CRASH_SCALE=$${KMS_CRASH_SCALE:-4} $(BUILD)/tests/daemon/test_crash

bench: all
	scripts/bench-suite

# `make install` (PREFIX, DESTDIR): binaries, the library with its soname,
# the header and pkg-config file, man pages, the systemd unit and its
# system user, the example configuration, bash completion.
BINDIR	?= $(PREFIX)/bin
LIBDIR	?= $(PREFIX)/lib
INCDIR	?= $(PREFIX)/include
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR	?= $(PREFIX)/share
MANDIR	?= $(DATADIR)/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
COMPDIR	?= $(DATADIR)/bash-completion/completions
MANPAGES := man/kmsctl.1 man/kms-bench.1 man/libkmsclient.3 man/kmsd.conf.5 \
	man/kmsd.8

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBEXECDIR)/kmsd \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(COMPDIR) $(DESTDIR)$(DATADIR)/doc/kmsd \
		$(DESTDIR)$(SYSCONFDIR)/kmsd
	install -m 755 $(BIN)/kmsd $(BIN)/kmsctl $(BIN)/kms-bench \
		$(BIN)/kms-drill $(DESTDIR)$(BINDIR)
	install -m 755 scripts/hsm-init $(DESTDIR)$(LIBEXECDIR)/kmsd/hsm-init
	install -m 644 $(LIB)/libkmsclient.a $(DESTDIR)$(LIBDIR)
	install -m 755 $(LIB)/libkmsclient.so $(DESTDIR)$(LIBDIR)/libkmsclient.so.1
	ln -sf libkmsclient.so.1 $(DESTDIR)$(LIBDIR)/libkmsclient.so
	install -m 644 include/kms.h $(DESTDIR)$(INCDIR)
	sed -e 's|^prefix=.*|prefix=$(PREFIX)|' \
		-e 's|^libdir=.*|libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
		-e 's|^includedir=.*|includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCDIR))|' \
		kmsclient.pc \
		> $(DESTDIR)$(LIBDIR)/pkgconfig/kmsclient.pc
	for m in $(MANPAGES); do \
		s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; \
		install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; \
	done
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' \
		-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/kmsd.service.in \
		> $(DESTDIR)$(UNITDIR)/kmsd.service
	install -m 644 dist/kmsd.sysusers $(DESTDIR)$(SYSUSERSDIR)/kmsd.conf
	install -m 644 dist/kmsctl.bash-completion $(DESTDIR)$(COMPDIR)/kmsctl
	install -m 644 kmsd.conf.example README.md PROTOCOL.md \
		$(DESTDIR)$(DATADIR)/doc/kmsd
	[ -e $(DESTDIR)$(SYSCONFDIR)/kmsd/kmsd.conf ] || \
		install -m 640 dist/kmsd.conf $(DESTDIR)$(SYSCONFDIR)/kmsd/kmsd.conf

# Leaves the configuration and /var/lib/kmsd (keys!) alone.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/kmsd $(DESTDIR)$(BINDIR)/kmsctl \
		$(DESTDIR)$(BINDIR)/kms-bench $(DESTDIR)$(BINDIR)/kms-drill \
		$(DESTDIR)$(LIBEXECDIR)/kmsd/hsm-init \
		$(DESTDIR)$(LIBDIR)/libkmsclient.a \
		$(DESTDIR)$(LIBDIR)/libkmsclient.so \
		$(DESTDIR)$(LIBDIR)/libkmsclient.so.1 \
		$(DESTDIR)$(LIBDIR)/pkgconfig/kmsclient.pc \
		$(DESTDIR)$(INCDIR)/kms.h $(DESTDIR)$(UNITDIR)/kmsd.service \
		$(DESTDIR)$(SYSUSERSDIR)/kmsd.conf $(DESTDIR)$(COMPDIR)/kmsctl
	for m in $(MANPAGES); do \
		rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m#man/}; \
	done
	rm -rf $(DESTDIR)$(DATADIR)/doc/kmsd
	-rmdir $(DESTDIR)$(LIBEXECDIR)/kmsd

clean:
	rm -rf build build-asan build-fuzz bin lib kmsclient.pc

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
