#!/usr/bin/env bash
# Static checks of infrastructure as code, offline: cfn-lint on CloudFormation templates and
# checkov's CloudFormation and Terraform policies, both from the hashed lock that
# engines/install-cfn-tools.sh installs. Both tools always run; the script fails (exit 1)
# when cfn-lint reports an error (warnings and informational findings are printed and
# counted, they do not fail) or checkov a failed check (or when either crashes), and ends
# with one summary line per tool.
#
#   tools/iac-check.sh <junit-dir> <file-or-dir>...
#
#   <junit-dir>     gets cfn-lint.xml and checkov.xml (JUnit), for CI to keep
#   <file-or-dir>   files, or directories searched (hidden directories, node_modules and
#                   .terraform skipped) for *.tf, *.yaml, *.yml, *.json and *.template;
#                   cfn-lint gets every *.yaml file of those (each must be a template),
#                   checkov all of them (it ignores YAML/JSON that is not a template)
#
# Checkov gets every file by --file, never by --directory: the two cannot be mixed, and
# with --file its results name each file by its path from here (with --directory, by its
# path inside that directory only). Terraform resources that refer to each other across
# files of a directory are still linked, as with --directory.
#
# Checkov runs with no API key and nothing from the network: without --skip-download and
# BC_SKIP_MAPPING it fetches Prisma Cloud's guidelines on every run, and without
# CKV_SKIP_PACKAGE_UPDATE_CHECK it asks PyPI for a newer checkov (and caches the answer in
# ~/.cache/checkov). It still reads a .checkov.yaml from the working directory or ~.
#
# Suppressing a finding in the code, with a reason:
#   cfn-lint, CloudFormation   Metadata: {cfn-lint: {config: {ignore_checks: [E3002]}}}
#                              on the resource
#   checkov, CloudFormation    Metadata: {checkov: {skip: [{id: CKV_AWS_18, comment: why}]}}
#                              on the resource
#   checkov, Terraform         #checkov:skip=CKV_AWS_18:why   inside the resource block
set -euo pipefail
usage="usage: $0 <junit-dir> <file-or-dir>..."
if [[ $# -lt 2 ]]; then
    echo "$usage" >&2
    exit 2
fi
junit=$1
shift
# checkov's --output-file-path is a comma-separated list.
if [[ $junit == *,* ]]; then
    echo "$0: the JUnit directory's path must not contain a comma: $junit" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd -P)

files=()
for path in "$@"; do
    if [[ -d $path ]]; then
        while IFS= read -r -d '' f; do
            files+=("$f")
        done < <(find "$path" -mindepth 1 \
            \( -name '.*' -o -name node_modules -o -name .terraform \) -prune -o \
            -type f \( -name '*.tf' -o -name '*.yaml' -o -name '*.yml' -o -name '*.json' \
            -o -name '*.template' \) -print0 | sort -z)
    elif [[ -f $path ]]; then
        files+=("$path")
    else
        echo "$0: no such file or directory: $path" >&2
        exit 2
    fi
done
templates=()
for f in "${files[@]}"; do
    if [[ $f == *.yaml ]]; then
        templates+=("$f")
    fi
done

bin=$(bash "$root/engines/install-cfn-tools.sh")
mkdir -p "$junit"
rm -f "$junit/cfn-lint.xml" "$junit/checkov.xml"

# Counts checkov's results in its JUnit file, as "passed failed skipped".
count_checkov() {
    "$bin/python" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET

tests = failed = skipped = errors = 0
for suite in ET.parse(sys.argv[1]).getroot().iter("testsuite"):
    tests += int(suite.get("tests", 0))
    failed += int(suite.get("failures", 0))
    skipped += int(suite.get("skipped", 0))
    errors += int(suite.get("errors", 0))
print(tests - failed - skipped - errors, failed + errors, skipped)
EOF
}

failed=0

# cfn-lint writes one format per run: the human one here (each finding starts a line with
# its rule's id, whose first letter is its level), JUnit in a second run. The findings are
# counted from the human one: the JUnit one leaves out E0000 (a template that does not parse).
cfn_summary="cfn-lint: 0 errors (no *.yaml templates given)"
if [[ ${#templates[@]} -gt 0 ]]; then
    echo "== cfn-lint: ${#templates[@]} templates"
    start=$(date +%s)
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
    cfn_rc=0
    "$bin/cfn-lint" --non-zero-exit-code error -- "${templates[@]}" >"$out" || cfn_rc=$?
    cat "$out"
    "$bin/cfn-lint" --non-zero-exit-code error --format junit \
        --output-file "$junit/cfn-lint.xml" -- "${templates[@]}" || true
    echo "cfn-lint took $(( $(date +%s) - start ))s" >&2
    errors=$(grep -cE '^E[0-9]{4} ' "$out" || true)
    warnings=$(grep -cE '^W[0-9]{4} ' "$out" || true)
    infos=$(grep -cE '^I[0-9]{4} ' "$out" || true)
    cfn_summary="cfn-lint: $errors errors ($warnings warnings, $infos informational)"
    if [[ $cfn_rc -ne 0 && $errors -eq 0 ]]; then
        cfn_summary="cfn-lint: failed (exit $cfn_rc) with 0 errors reported"
    fi
    if [[ $cfn_rc -ne 0 || $errors -ne 0 ]]; then
        failed=1
    fi
fi

checkov_summary="checkov: no checks (no files given)"
if [[ ${#files[@]} -gt 0 ]]; then
    echo "== checkov: ${#files[@]} files"
    start=$(date +%s)
    checkov_rc=0
    # CHECKOV_RUN_SCA_PACKAGE_SCAN_V2 is read by older checkovs only (not by 3.3.30); the SCA
    # scans are not among the frameworks run here anyway.
    env -u BC_API_KEY -u PRISMA_API_URL \
        BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
        CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
        "$bin/checkov" --framework cloudformation,terraform --skip-download --quiet --compact \
        -o cli -o junitxml --output-file-path "console,$junit/checkov.xml" \
        -f "${files[@]}" || checkov_rc=$?
    echo "checkov took $(( $(date +%s) - start ))s" >&2
    if [[ -s "$junit/checkov.xml" ]]; then
        read -r passed fails skipped < <(count_checkov "$junit/checkov.xml")
        checkov_summary="checkov: checks $passed pass, $fails fail, $skipped skipped"
    else
        fails=0
        checkov_summary="checkov: wrote no JUnit report (exit $checkov_rc)"
    fi
    if [[ $checkov_rc -ne 0 && $fails -eq 0 ]]; then
        checkov_summary+=" (but failed: exit $checkov_rc)"
    fi
    if [[ $checkov_rc -ne 0 || $fails -ne 0 ]]; then
        failed=1
    fi
fi

echo "$cfn_summary"
echo "$checkov_summary"
exit "$failed"
