# Fairstat -- build, test, run, bench, fuzz, deps, install.
#
#   make              build bin/fairstat-collector, bin/fairstat-aggregator and the
#                     snippet (the snippet once `make deps` has installed node_modules)
#   make run          install what running needs, build, start Redis + collector +
#                     aggregator in the foreground with var/fairstat.conf
#   make stop         stop what `make run` started (from another terminal)
#   make test         install what the tests need too, build, run every suite
#   make unit         build and run the C unit tests
#   make fuzz         build the libFuzzer targets and run each for FUZZ_TIME seconds (60)
#   make soak         long fault tests (faults.test.mjs with FAULTS_SCALE=10: ten times
#                     the load and the outages) then each fuzz target for FUZZ_TIME (600)
#   make bench        collector vs nginx CPU per hit under two loads, many sites, drain,
#                     report times on a large data set (see bench/README.md)
#   make deps         install what building and running need; `make deps-test` adds
#                     what the tests need (cmocka, Chromium, playwright-core)
#   make SANITIZER=address test      (or undefined): builds into build/address/

PREFIX     ?= /usr/local
DESTDIR    ?=
CC         ?= cc
SANITIZER  ?=
OPT        ?= -O2 -g

WARNINGS   = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
             -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
PKGS       = libevent hiredis libmaxminddb inih jansson yajl libcrypto libpcre2-8

# Only a make that compiles asks pkg-config: `make deps` must work without it, and
# `make run`, `test` and `bench` install the libraries first, then build in a second make.
NO_BUILD_GOALS = deps deps-test run stop test soak bench fuzz clean snippet ua-data
ifneq ($(filter-out $(NO_BUILD_GOALS),$(or $(MAKECMDGOALS),all)),)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifeq ($(PKG_LIBS),)
$(error pkg-config does not find all of $(PKGS): run make deps)
endif
endif

ifneq ($(SANITIZER),)
SAN_FLAGS  = -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CPPFLAGS  += -D_GNU_SOURCE
CFLAGS    += -std=c11 $(OPT) $(WARNINGS) $(SAN_FLAGS) $(PKG_CFLAGS) -MMD -MP
LDFLAGS   += $(SAN_FLAGS)
LDLIBS    += $(PKG_LIBS) -lpthread -lm

# One folder per flavour, so that `make SANITIZER=address` after `make` rebuilds
# everything and switching back rebuilds nothing. $(BUILD)/flags holds the flags the
# objects were built with: any other change (OPT=, CC=) rebuilds them too.
BUILD      = build/$(or $(SANITIZER),default)

# Each program sees its own folder and common/, nothing else: an include from the
# collector of an aggregator header (or the other way round) does not compile.
# A build.mk adds folders with `$(BUILD)/DIR/%.o: INCLUDES += -I...`.
$(BUILD)/common/%.o:     INCLUDES = -Icommon
$(BUILD)/collector/%.o:  INCLUDES = -Icommon -Icollector
$(BUILD)/aggregator/%.o: INCLUDES = -Icommon -Iaggregator
$(BUILD)/tests/%:        INCLUDES = -Icommon -Icollector -Iaggregator

COMMON_OBJ     = $(patsubst %.c,$(BUILD)/%.o,$(wildcard common/*.c))
COLLECTOR_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(filter-out collector/main.c,$(wildcard collector/*.c)))
AGGREGATOR_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(filter-out aggregator/main.c,$(wildcard aggregator/*.c)))
UNIT_TESTS     = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

BINS = bin/fairstat-collector bin/fairstat-aggregator

.PHONY: all deps deps-test test soak unit run stop bench fuzz install clean FORCE
all: $(BINS)

# Optional parts add their own rules (the snippet build, the UA data refresh).
-include $(wildcard */build.mk)

$(BUILD)/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' | cmp -s - $@ || \
	    echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' > $@

# bin/ holds one flavour at a time: link again whenever another one was linked last.
build/bin-flavour: FORCE
	@mkdir -p $(@D)
	@echo '$(BUILD)' | cmp -s - $@ || echo '$(BUILD)' > $@

$(BUILD)/%.o: %.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(INCLUDES) $(CFLAGS) -c $< -o $@

# The objects of common/ go into both programs (and every unit test).
$(BUILD)/libcommon.a: $(COMMON_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(BUILD)/libcollector.a: $(COLLECTOR_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(BUILD)/libaggregator.a: $(AGGREGATOR_OBJ)
	@rm -f $@; $(AR) rcs $@ $^

bin/fairstat-collector: $(BUILD)/collector/main.o $(BUILD)/libcollector.a $(BUILD)/libcommon.a build/bin-flavour
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $(filter-out build/bin-flavour,$^) $(LDLIBS)

bin/fairstat-aggregator: $(BUILD)/aggregator/main.o $(BUILD)/libaggregator.a $(BUILD)/libcommon.a build/bin-flavour
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $(filter-out build/bin-flavour,$^) $(LDLIBS)

# Each unit test links the module archives; only what it uses is pulled in.
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcollector.a $(BUILD)/libaggregator.a $(BUILD)/libcommon.a $(BUILD)/flags
	@pkg-config --exists cmocka || { echo "cmocka is missing: run make deps-test" >&2; exit 1; }
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(INCLUDES) $(CFLAGS) -o $@ $< $(BUILD)/libcollector.a $(BUILD)/libaggregator.a \
	    $(BUILD)/libcommon.a $(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs cmocka 2>/dev/null)

deps:
	@sh scripts/deps.sh run

deps-test:
	@sh scripts/deps.sh test

unit: $(UNIT_TESTS)
	@sh tests/run.sh --unit $(UNIT_TESTS)

# A sanitizer build runs several times slower: the node tests' waits for a
# readiness get FAIRSTAT_TEST_PATIENCE times their usual deadline (harness.mjs).
test: deps-test
	@$(MAKE) --no-print-directory all $(UNIT_TESTS)
	@$(if $(SANITIZER),FAIRSTAT_TEST_PATIENCE=$${FAIRSTAT_TEST_PATIENCE:-4}) sh tests/run.sh $(UNIT_TESTS)

run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run.sh

stop:
	@sh scripts/run.sh stop

bench:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory all bench-noack
	@NOACK=$(NOACK_BIN) sh bench/run.sh

fuzz:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk fuzz-run

# The long variants: what make test runs in seconds, for minutes. Each fault
# scenario's figures are printed (lines starting with "# "); the first failure stops.
FAULTS_SCALE ?= 10
soak: deps-test
	@$(MAKE) --no-print-directory all
	FAULTS_SCALE=$(FAULTS_SCALE) node --test tests/integration/faults.test.mjs
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk fuzz-run FUZZ_TIME=$(or $(FUZZ_TIME),600)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/fairstat $(DESTDIR)/etc/fairstat
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	[ ! -f js-snippet/dist/fs.js ] || install -m 644 js-snippet/dist/fs.js js-snippet/dist/fs.js.gz $(DESTDIR)$(PREFIX)/share/fairstat/
	[ ! -f js-snippet/dist/fs-cmp.js ] || install -m 644 js-snippet/dist/fs-cmp.js js-snippet/dist/fs-cmp.js.gz $(DESTDIR)$(PREFIX)/share/fairstat/
	install -m 644 config/*.service config/*.timer $(DESTDIR)$(PREFIX)/share/fairstat/ 2>/dev/null || true
	[ -f $(DESTDIR)/etc/fairstat/fairstat.conf ] || install -m 640 config/fairstat.conf $(DESTDIR)/etc/fairstat/

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
