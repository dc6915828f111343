# Fairstat -- build, test, run, bench, fuzz, deps, install.
#
#   make              build bin/fairstat-collector, bin/fairstat-aggregator, the snippet
#   make test         install what is missing, build, run every suite
#   make run          install what is missing, build, start redis + collector + aggregator
#   make bench        collector vs nginx CPU per stored hit (see bench/README.md)
#   make SANITIZER=address test      (or undefined)

PREFIX     ?= /usr/local
DESTDIR    ?=
CC         ?= cc
SANITIZER  ?=
OPT        ?= -O2 -g

WARNINGS   = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
             -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
PKGS       = libevent hiredis libmaxminddb inih jansson yajl libcrypto libpcre2-8

# pkg-config is asked only when building, so that `make deps` works without it.
ifeq ($(filter deps clean,$(MAKECMDGOALS)),)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
endif

ifneq ($(SANITIZER),)
SAN_FLAGS  = -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CPPFLAGS  += -Icommon -Icollector -Iaggregator -D_GNU_SOURCE
CFLAGS    += -std=c11 $(OPT) $(WARNINGS) $(SAN_FLAGS) $(PKG_CFLAGS) -MMD -MP
LDFLAGS   += $(SAN_FLAGS)
LDLIBS    += $(PKG_LIBS) -lhttp_parser -lpthread -lm

BUILD      = build

COMMON_OBJ     = $(patsubst %.c,$(BUILD)/%.o,$(wildcard common/*.c))
COLLECTOR_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(filter-out collector/main.c,$(wildcard collector/*.c)))
AGGREGATOR_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(filter-out aggregator/main.c,$(wildcard aggregator/*.c)))
UNIT_TESTS     = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

BINS = bin/fairstat-collector
ifneq ($(wildcard aggregator/main.c),)
BINS += bin/fairstat-aggregator
endif

.PHONY: all deps test unit run stop bench fuzz install clean
all: $(BINS)

# Optional parts add their own rules (the snippet build, the UA data refresh).
-include $(wildcard */build.mk)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libcommon.a: $(COMMON_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(BUILD)/libcollector.a: $(COLLECTOR_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(BUILD)/libaggregator.a: $(AGGREGATOR_OBJ) $(BUILD)/libcommon.a
	@rm -f $@; $(AR) rcs $@ $(AGGREGATOR_OBJ)

bin/fairstat-collector: $(BUILD)/collector/main.o $(BUILD)/libcollector.a $(BUILD)/libcommon.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bin/fairstat-aggregator: $(BUILD)/aggregator/main.o $(BUILD)/libaggregator.a $(BUILD)/libcommon.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Each unit test links the module archives; only what it uses is pulled in.
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcollector.a $(BUILD)/libaggregator.a $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libcollector.a $(BUILD)/libaggregator.a \
	    $(BUILD)/libcommon.a $(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs cmocka 2>/dev/null)

deps:
	@sh scripts/deps.sh

unit: all $(UNIT_TESTS)

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_TESTS)
	@sh tests/run.sh $(UNIT_TESTS)

run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run.sh

stop:
	@sh scripts/run.sh stop

bench: deps
	@BENCH=1 sh scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh

fuzz:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/fairstat $(DESTDIR)/etc/fairstat
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	[ ! -f js-snippet/dist/fs.js ] || install -m 644 js-snippet/dist/fs.js js-snippet/dist/fs.js.gz $(DESTDIR)$(PREFIX)/share/fairstat/
	install -m 644 config/*.service config/*.timer $(DESTDIR)$(PREFIX)/share/fairstat/ 2>/dev/null || true
	[ -f $(DESTDIR)/etc/fairstat/fairstat.conf ] || install -m 640 config/fairstat.conf $(DESTDIR)/etc/fairstat/

clean:
	rm -rf $(BUILD) bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
