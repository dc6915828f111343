# tests/fuzz/fuzz.mk -- builds every tests/fuzz/fuzz_*.c as a libFuzzer binary.
#
#   make fuzz [FUZZ_TIME=60]        builds every target, runs each for FUZZ_TIME s from
#                                   its seed corpus tests/fuzz/corpus/NAME/ (new inputs go to
#                                   build/fuzz/corpus/NAME/, the seeds stay as committed)
#   make -f tests/fuzz/fuzz.mk fuzz-replay   builds and runs each target once over its seeds
#                                   (tests/run.sh does this in make test)
#   ./build/fuzz/fuzz_http -max_total_time=60     (fuzz_beacon, fuzz_cfg, fuzz_consent,
#                                   fuzz_rawhit, fuzz_spool, fuzz_tcf, fuzz_ua, fuzz_url alike)
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
FUZZ_LDLIBS   = $(FUZZ_PKG_LIBS) -lpthread -lm

FUZZ_SRC     = $(wildcard common/*.c) $(filter-out collector/main.c,$(wildcard collector/*.c))
FUZZ_OBJ     = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_SRC))
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

FUZZ_TIME  ?= 60
FUZZ_NAMES  = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz-all fuzz-run fuzz-replay
fuzz-all: $(FUZZ_TARGETS)

# One target after another, each for FUZZ_TIME seconds; the first crash stops
# the run (libFuzzer leaves crash-<sha1> in build/fuzz/).
fuzz-run: $(FUZZ_TARGETS)
	@for t in $(FUZZ_NAMES); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    echo "== fuzz_$$t for $(FUZZ_TIME) s"; \
	    (cd $(FUZZ_BUILD) && ./fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=5 -print_final_stats=1 \
	        corpus/$$t $(CURDIR)/tests/fuzz/corpus/$$t >fuzz_$$t.log 2>&1); rc=$$?; \
	    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==ERROR|SUMMARY)' \
	        $(FUZZ_BUILD)/fuzz_$$t.log; \
	    [ $$rc -eq 0 ] || { echo "fuzz_$$t failed: see $(FUZZ_BUILD)/fuzz_$$t.log"; exit 1; }; \
	done

# Every seed once (-runs=0): what once crashed or was fixed stays fixed.
fuzz-replay: $(FUZZ_TARGETS)
	@for t in $(FUZZ_NAMES); do ./$(FUZZ_BUILD)/fuzz_$$t -runs=0 tests/fuzz/corpus/$$t >/dev/null 2>&1 \
	    && echo "ok fuzz_$$t" || echo "FAILED fuzz_$$t"; done

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libfuzzcode.a: $(FUZZ_OBJ)
	@rm -f $@; $(AR) rcs $@ $^

# fuzz_query compiles aggregator/query.c, rows.c and countmap.c in itself (the rest of the
# aggregator stubbed): the aggregator's objects are not part of libfuzzcode.
$(FUZZ_BUILD)/fuzz_query: private FUZZ_CPPFLAGS += -Iaggregator

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libfuzzcode.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) $(FUZZ_LDFLAGS) -o $@ $< \
	    $(FUZZ_BUILD)/libfuzzcode.a $(FUZZ_LDLIBS)

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
