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
TEST_SRC   := $(wildcard tests/test_*.c)
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
TOOLS     := $(BIN)/kmsctl $(BIN)/kms-bench

.PHONY: all run test check asan fuzz bench install clean deps tests
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

$(CLIENT_A): $(call obj,$(CLIENT_SRC)) $(call obj,$(COMMON_SRC))
	@mkdir -p $(LIB)
	rm -f $@ && ar rcs $@ $^
$(CLIENT_SO): $(call obj,$(CLIENT_SRC)) $(call obj,$(COMMON_SRC))
	@mkdir -p $(LIB)
	$(CC) $(CFLAGS) -shared -Wl,-soname,libkmsclient.so.1 -o $@ $^ $(LDFLAGS) $(LDLIBS)

kmsclient.pc: Makefile
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: kmsclient\nDescription: kmsd client library\nVersion: 0.1.0\nRequires.private: libsodium jansson\nLibs: -L$${libdir} -lkmsclient\nLibs.private: -lpthread\nCflags: -I$${includedir}\n' '$(PREFIX)' > $@

DAEMON_LIBS := $(LIBKMSD) $(LIBPOLICY) $(LIBHSM) $(LIBCOMMON)
# kmsd/daemon/heapwipe.c replaces free() and realloc() in the daemon only.
$(BIN)/kmsd: $(call obj,$(KMSD_MAIN)) $(DAEMON_LIBS)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(HTTP_LIBS) $(LDLIBS)

$(BIN)/kmsctl: $(call obj,$(wildcard tools/kmsctl/*.c)) $(CLIENT_A)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# kms-bench links the hsm layer and kmsd's config reader too, for
# --baseline hsm.
$(BIN)/kms-bench: $(call obj,$(wildcard tools/bench*.c) kmsd/daemon/config.c) $(CLIENT_A) \
    $(LIBHSM) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(HTTP_LIBS) $(CURL_LIBS) $(LDLIBS)

$(SHIM_SO): $(call obj,$(SHIM_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $^ -ldl -lpthread

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/testutil.o $(DAEMON_LIBS) $(CLIENT_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(HTTP_LIBS) $(LDLIBS)

tests: all $(TEST_BINS) $(SHIM_SO)

deps:
	scripts/install-deps

# `make run`: dependencies, token on first use, kmsd in the foreground.
run: deps
	$(MAKE) all
	scripts/hsm-init var
	exec bin/kmsd

# `make test`: the whole suite, plain and under ASan+UBSan.
ASAN_VARS := BUILD=build-asan BIN=build-asan/bin LIB=build-asan/lib \
	OPT="-O1 -g $(SANFLAGS)" LDFLAGS="$(SANFLAGS)"
test: deps
	$(MAKE) check
	$(MAKE) $(ASAN_VARS) check

check: tests
	BUILD=$(BUILD) BIN=$(BIN) tests/run-all

asan:
	$(MAKE) $(ASAN_VARS) check

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
fuzz:
	@mkdir -p build-fuzz
	for f in $(FUZZ_SRC); do \
		clang -std=c11 -D_GNU_SOURCE -g -O1 -I. -Iinclude \
		-fsanitize=fuzzer,address,undefined $$f $(COMMON_SRC) $(POLICY_SRC) \
		-o build-fuzz/$$(basename $$f .c) $(LDLIBS) || exit 1; \
	done

bench: all
	scripts/bench-suite

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
		$(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 bin/kmsd bin/kmsctl bin/kms-bench $(DESTDIR)$(PREFIX)/bin
	install -m 644 lib/libkmsclient.a $(DESTDIR)$(PREFIX)/lib
	install -m 755 lib/libkmsclient.so $(DESTDIR)$(PREFIX)/lib/libkmsclient.so.1
	ln -sf libkmsclient.so.1 $(DESTDIR)$(PREFIX)/lib/libkmsclient.so
	install -m 644 include/kms.h $(DESTDIR)$(PREFIX)/include
	install -m 644 kmsclient.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig

clean:
	rm -rf build build-asan build-fuzz bin lib kmsclient.pc

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
