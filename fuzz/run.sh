#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a while: `fuzz/run.sh SECONDS [TARGET...]`
# (`make fuzz-smoke`, `make fuzz`). Prints one line per target with its executions and
# closes with `fuzz result: N passed; N failed;`. Exits non-zero on any crash, leak,
# timeout or out-of-memory, after printing the input's path and the report.
#
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets it take the -Z flags that
# cargo-fuzz passes (sanitizer coverage; `-s address` works too). Everything it writes is
# outside the repository: the build in FUZZ_TARGET_DIR, the growing corpus, crash inputs
# and logs in FUZZ_WORK. The committed seeds in fuzz/corpus/<target>/ are only read.
#
#   FUZZ_SANITIZER      none (default: a build half the cost, same coverage) or address
#   FUZZ_BUILD_FLAGS    cargo fuzz build flags (default -O --codegen-units 16)
#   FUZZ_TARGET_DIR     default ~/.cache/autobackup/target-fuzz
#   FUZZ_WORK           default ~/.cache/autobackup/fuzz-work
#   FUZZ_ARGS           extra libFuzzer flags (e.g. -runs=1000000)
#   FUZZ_SCRATCH        where archive_reader unpacks (default /dev/shm, else FUZZ_WORK/tmp)
#   FUZZ_CORPUS_MAX     merge the grown corpus down past this many inputs (default 4000)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(event_parser scenario_parser archive_reader)

cargo_fuzz=$(bash engines/install-cargo-fuzz.sh) || exit 1
export PATH="$(dirname "$cargo_fuzz"):$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/autobackup/target-fuzz}"
work="${FUZZ_WORK:-$HOME/.cache/autobackup/fuzz-work}"
sanitizer="${FUZZ_SANITIZER:-none}"
read -r -a build_flags <<<"${FUZZ_BUILD_FLAGS:--O --codegen-units 16}"
read -r -a extra <<<"${FUZZ_ARGS:-}"
# Where archive_reader unpacks (a fresh directory per input, removed after it): memory
# when there is a tmpfs, several times faster than a disk.
scratch_root="${FUZZ_SCRATCH:-}"
if [[ -z $scratch_root ]]; then
    if [[ -d /dev/shm && -w /dev/shm ]]; then scratch_root=/dev/shm; else scratch_root="$work/tmp"; fi
fi

start=$(date +%s)
# All targets at once: they share every dependency.
if ! nice -n 10 cargo fuzz build --fuzz-dir fuzz -s "$sanitizer" "${build_flags[@]}"; then
    echo "fuzz: building the targets failed"
    echo "fuzz result: 0 passed; ${#targets[@]} failed; (build)"
    exit 1
fi
echo "fuzz: targets built in $(( $(date +%s) - start ))s ($CARGO_TARGET_DIR, sanitizer $sanitizer)"
profile=release
for f in "${build_flags[@]}"; do [[ $f == --dev || $f == -D ]] && profile=debug; done
bin_dir="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/$profile"

passed=0
failed=0
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    log="$work/$t.log"
    mkdir -p "$corpus" "$artifacts"
    # A fresh private (0700) directory with an unpredictable name, created exclusively: a
    # directory or symlink another user put in the shared tmpfs first is never used.
    [[ -d $scratch_root ]] || mkdir -p -m 700 "$scratch_root"
    if ! scratch=$(mktemp -d "$scratch_root/autobackup-fuzz-$t.XXXXXXXXXX"); then
        failed=$((failed + 1))
        echo "fuzz: $t FAILED: cannot create a scratch directory under $scratch_root"
        continue
    fi
    # New inputs go to the first directory (outside the repository); the seeds are read.
    TMPDIR="$scratch" nice -n 10 "$bin_dir/$t" "$corpus" "fuzz/corpus/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "${extra[@]}" >"$log" 2>&1
    status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [[ $status -eq 0 ]]; then
        passed=$((passed + 1))
        echo "fuzz: $t ok: ${execs:-?} executions in ${secs:-$seconds}s (${rate:-?}/s), corpus $(find "$corpus" -type f | wc -l) inputs"
    else
        failed=$((failed + 1))
        echo "fuzz: $t FAILED (exit $status) after ${execs:-?} executions; log $log"
        grep -E '^(==[0-9]+==|SUMMARY|thread .* panicked|Test unit written|artifact_prefix)' "$log" | head -20
        sed -n '/panicked at/,/^==/p' "$log" | head -40
    fi
    # The grown corpus is kept between runs (later runs start where earlier ones ended);
    # past FUZZ_CORPUS_MAX inputs it is merged down to the inputs that add coverage.
    if [[ $status -eq 0 && $(find "$corpus" -type f | wc -l) -gt ${FUZZ_CORPUS_MAX:-4000} ]]; then
        merged="$work/corpus/$t.merged"
        rm -rf "$merged" && mkdir -p "$merged"
        if TMPDIR="$scratch" nice -n 10 "$bin_dir/$t" -merge=1 -timeout=10 "$merged" "$corpus" \
            >"$work/$t.merge.log" 2>&1; then
            rm -rf "$corpus" && mv "$merged" "$corpus"
            echo "fuzz: $t corpus merged to $(find "$corpus" -type f | wc -l) inputs"
        fi
    fi
    rm -rf "$scratch"
done
echo "fuzz result: $passed passed; $failed failed; (${#targets[@]} targets, ${seconds}s each)"
[[ $failed -eq 0 ]]
