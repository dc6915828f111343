# tests/fuzz/fuzz.mk -- builds every tests/fuzz/fuzz_*.c as a libFuzzer binary.
#
#   make fuzz                       (the top Makefile runs this file)
#   ./build/fuzz/fuzz_http -max_total_time=60     (fuzz_beacon, fuzz_consent, fuzz_rawhit, fuzz_spool, fuzz_ua alike)
#
# Each target links the sources of common/ and collector/ (not collector/main.c),
# compiled here again with coverage and AddressSanitizer into build/fuzz/, so
# the normal build in build/ is left alone. Needs clang with the libFuzzer
# runtime (Debian: clang, libclang-rt-14-dev). See tests/fuzz/README.md.

FUZZ_CC    ?= clang
FUZZ_BUILD ?= build/fuzz
FUZZ_SAN   ?= address,undefined
FUZZ_OPT   ?= -O1 -g -fno-omit-frame-pointer

FUZZ_WARNINGS = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
                -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
# The library list is the top Makefile's PKGS line, so the two cannot drift apart.
FUZZ_PKGS    ?= $(shell sed -n 's/^PKGS *= *//p' Makefile)
FUZZ_PKG_CFLAGS := $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null)
FUZZ_PKG_LIBS   := $(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null)

FUZZ_CPPFLAGS = -Icommon -Icollector -D_GNU_SOURCE
# Library objects get coverage but no libFuzzer main; the targets get both.
FUZZ_CFLAGS   = -std=c11 $(FUZZ_OPT) $(FUZZ_WARNINGS) $(FUZZ_PKG_CFLAGS) -MMD -MP \
                -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -fno-sanitize-recover=all
FUZZ_LDFLAGS  = -fsanitize=fuzzer,$(FUZZ_SAN)
FUZZ_LDLIBS   = $(FUZZ_PKG_LIBS) -lhttp_parser -lpthread -lm

FUZZ_SRC     = $(wildcard common/*.c) $(filter-out collector/main.c,$(wildcard collector/*.c))
FUZZ_OBJ     = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_SRC))
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz-all
fuzz-all: $(FUZZ_TARGETS)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libfuzzcode.a: $(FUZZ_OBJ)
	@rm -f $@; $(AR) rcs $@ $^

# fuzz_query compiles aggregator/query.c and rows.c in itself (the rest of the
# aggregator stubbed): the aggregator's objects are not part of libfuzzcode.
$(FUZZ_BUILD)/fuzz_query: private FUZZ_CPPFLAGS += -Iaggregator

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libfuzzcode.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) $(FUZZ_LDFLAGS) -o $@ $< \
	    $(FUZZ_BUILD)/libfuzzcode.a $(FUZZ_LDLIBS)

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
