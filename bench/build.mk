# bench/build.mk -- what make bench builds besides the programs.
#
#   make bench-noack    $(BUILD)/bench/collector-noack: the collector with
#                       HIT_BENCH_NOACK (collector/hit.c), which answers 202 to
#                       every hit it would store, without sending it to Redis. bench/run.sh
#                       measures it next to the collector and nginx, to show what
#                       Redis's acknowledgement costs the collector. It is not a
#                       product: it breaks the promise of a 202, and make install
#                       never installs it.

NOACK_BIN = $(BUILD)/bench/collector-noack

.PHONY: bench-noack
bench-noack: $(NOACK_BIN)

$(BUILD)/bench/noack-hit.o: collector/hit.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Icommon -Icollector $(CFLAGS) -DHIT_BENCH_NOACK=1 -c $< -o $@

# hit.o of the archive is not pulled in: noack-hit.o defines all it would.
$(NOACK_BIN): $(BUILD)/collector/main.o $(BUILD)/bench/noack-hit.o $(BUILD)/libcollector.a $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
