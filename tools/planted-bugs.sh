#!/usr/bin/env bash
# Plants issue 24's two validator bugs, one at a time, in a copy of the workspace and plays
# the generated workloads `make test` plays (WORKLOADS per engine from WORKLOAD_SEED)
# against each, with the real engines. Passes only when every planted bug is caught on
# every engine: the workloads' invariants must fail. Prints, per bug and engine, how many
# workloads broke an invariant and how many of those the outcome oracle
# (`final-outcome-is-explained`) named.
#
#   validates-corrupt     judge() calls a replica whose content differs `validated`
#   unverifiable-corrupt  judge() calls it `unverifiable` (the alert still goes out; only
#                         the diagnosis is wrong)
#
#   ENGINES        engines to play on (default: localstack ministack)
#   WORKLOADS      workloads per engine and bug (default 100)
#   WORKLOAD_SEED  the generator's seed (default 20261201, make test's)
#   BUGS           which bugs (default: both)
#
# The copies and their build live in the harness cache (outside the repository), so a
# second run rebuilds only the validator and what depends on it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
engines=${ENGINES:-localstack ministack}
runs=${WORKLOADS:-100}
seed=${WORKLOAD_SEED:-20261201}
bugs=${BUGS:-validates-corrupt unverifiable-corrupt}
cache=${HARNESS_CACHE_DIR:-$HOME/.cache/autobackup-harness}
work="$cache/planted-bugs"
export HARNESS_CACHE_DIR="$cache"
export CARGO_TARGET_DIR="$work/target"
export RUST_LOG=${RUST_LOG:-warn,failure_notifier=off,checksum_validator=off,aws_sdk_s3=off}
target_file=functions/checksum-validator/src/decision.rs
original='        return Outcome::Mismatch;'

plant() {
    case "$1" in
    validates-corrupt) echo '        return Outcome::Validated;' ;;
    unverifiable-corrupt) echo '        return Outcome::Unverifiable;' ;;
    *) echo "planted-bugs: unknown bug $1 (known: validates-corrupt unverifiable-corrupt)" >&2; return 2 ;;
    esac
}

mkdir -p "$work"
chmod 700 "$work"
summary=()
status=0
for bug in $bugs; do
    line=$(plant "$bug")
    copy="$work/$bug"
    mkdir -p "$copy"
    # The workspace as it is now (tracked and new files, not ignored ones), mtimes kept so
    # cargo rebuilds only what the planted line touches.
    (cd "$root" && git ls-files -z --cached --others --exclude-standard |
        tar --null -T - -cf -) | tar -xf - -C "$copy"
    hits=$(grep -cxF -- "$original" "$copy/$target_file" || true)
    if [[ "$hits" != 1 ]]; then
        echo "planted-bugs: $target_file has $hits line(s) '$original', not 1: update this script" >&2
        exit 2
    fi
    # Planted line by line (awk, not sed: no escaping of the replacement).
    awk -v from="$original" -v to="$line" '$0 == from { print to; next } { print }' \
        "$copy/$target_file" >"$copy/$target_file.new"
    mv "$copy/$target_file.new" "$copy/$target_file"
    echo "planted-bugs: $bug: $(grep -nxF -- "$line" "$copy/$target_file" | head -1) in $target_file"
    for engine in $engines; do
        log="$work/$bug-$engine.log"
        out=$(mktemp -d "$work/out.XXXXXX")
        started=$(date +%s)
        set +e
        (cd "$copy" && cargo run --quiet -p harness -- --engine "$engine" fuzz \
            --runs "$runs" --seed "$seed" --shrink-budget 0 --out "$out") >"$log" 2>&1
        code=$?
        set -e
        rm -rf "$out"
        failed=$(awk '/^fuzz result:/ { for (i = 2; i <= NF; i++) if ($i == "failed;") f = $(i-1) } END { print f + 0 }' "$log")
        oracle=$(awk '/^fuzz: workload [0-9]* breaks/ { w = $3 } /^  .*final-outcome-is-explained/ { if (w != "" && !(w in seen)) { seen[w] = 1; n++ } } END { print n + 0 }' "$log")
        took=$(($(date +%s) - started))
        if [[ "$code" == 1 && "$failed" -gt 0 ]]; then
            verdict=caught
        else
            verdict="NOT CAUGHT (exit $code)"
            status=1
        fi
        summary+=("$(printf '%-22s %-10s %s: %s of %s workloads failing, %s named by final-outcome-is-explained, %ss (log %s)' \
            "$bug" "$engine" "$verdict" "$failed" "$runs" "$oracle" "$took" "$log")")
        echo "planted-bugs: ${summary[-1]}"
    done
done
echo "planted-bugs: summary (seed $seed)"
printf '  %s\n' "${summary[@]}"
exit "$status"
