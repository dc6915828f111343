#!/bin/sh
# run.sh -- runs every suite (C unit tests, black-box node tests, browser tests)
# and ends with one line "N passed, N failed" summing all of them.
#
#   sh tests/run.sh [--unit] UNIT_TEST_BINARY...
#
# --unit runs the given unit tests only (make unit). The node suites include
# tests/integration/readme.test.mjs, which runs the README's shell blocks.
cd "$(dirname "$0")/.."
suites="integration browser"
if [ "${1:-}" = --unit ]; then suites=""; shift; fi
pass=0; fail=0
log=$(mktemp)

for t in "$@"; do
    echo "== unit: $t"
    "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed before its summary
    pass=$((pass + p)); fail=$((fail + f))
done

# The fuzz targets' seed corpora, each input once (-runs=0): one pass or fail
# per target. Needs clang with the libFuzzer runtime (make deps-test installs
# it); without it the step is skipped, and says so.
if [ -n "$suites" ]; then
    if printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
        clang -fsanitize=fuzzer -x c - -o "$log.fuzzprobe" >/dev/null 2>&1; then
        rm -f "$log.fuzzprobe"
        echo "== fuzz corpora replay"
        if make --no-print-directory -f tests/fuzz/fuzz.mk fuzz-all >"$log" 2>&1; then
            for c in tests/fuzz/corpus/*/; do
                t=$(basename "$c")
                if ./build/fuzz/fuzz_"$t" -runs=0 "$c" >"$log" 2>&1; then
                    echo "ok fuzz_$t ($(ls "$c" | wc -l) seeds)"; pass=$((pass + 1))
                else
                    cat "$log"; echo "FAILED fuzz_$t"; fail=$((fail + 1))
                fi
            done
        else
            cat "$log"; echo "FAILED: building the fuzz targets"; fail=$((fail + 1))
        fi
    else
        rm -f "$log.fuzzprobe"
        echo "== fuzz corpora replay: SKIPPED (no clang with libFuzzer; make deps-test installs it)"
    fi
fi

# One file per node process, one after another: each file starts its own
# redis-server and collector, so they must not run at the same time.
for suite in $suites; do
    for file in tests/$suite/*.test.mjs; do
        [ -f "$file" ] || continue
        echo "== $file"
        node --test --test-reporter=tap "$file" >"$log" 2>&1
        rc=$?
        cat "$log"
        p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)
        f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)
        p=${p:-0}; f=${f:-0}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
        pass=$((pass + p)); fail=$((fail + f))
    done
done
rm -f "$log"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
