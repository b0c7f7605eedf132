#!/usr/bin/env bash
# Installs the infrastructure-as-code checkers tools/iac-check.sh runs, cfn-lint (CloudFormation
# templates) and checkov (CloudFormation and Terraform policy checks), from the hashed lock
# engines/cfn-tools-requirements.lock (`pip install --require-hashes`, wheels only) into a venv
# in the harness cache, and prints the venv's bin directory. A no-op (prints the path only)
# when that lock is installed.
#
#   HARNESS_CACHE_DIR   the harness cache (default ~/.cache/autobackup-harness)
#   HARNESS_CFN_PYTHON  the Python to make the venv with (default python3; not HARNESS_PYTHON,
#                       which the engines need at 3.13)
#
# The lock pins cfn-lint 1.58.0, checkov 3.3.30 and all of their 99 dependencies, each by
# the hash of its wheel (none of them is sdist-only). Several of those wheels are compiled for
# CPython 3.11 (numpy, pydantic-core, orjson, PyYAML, ...), so HARNESS_CFN_PYTHON must be a
# CPython 3.11 on Linux x86_64 (python3 here is 3.11.7); another Python fails the hash check.
# Regenerate the lock as its header says, with engines/hash-lock.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lock="$here/cfn-tools-requirements.lock"
cache="${HARNESS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/autobackup-harness}"
digest=$(sha256sum "$lock" | cut -c1-16)
venv="$cache/tools/cfn-$digest"
if [[ -f "$venv/.installed" ]]; then
    echo "$venv/bin"
    exit 0
fi
python="${HARNESS_CFN_PYTHON:-python3}"
echo "installing cfn-lint and checkov from $lock into $venv" >&2
start=$(date +%s)
# -m 700 is meant for the cache itself only, not for its parents (e.g. ~/.cache).
# shellcheck disable=SC2174
mkdir -p -m 700 "$cache"
mkdir -p "$cache/tools"
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$lock" >&2
echo "cfn-lint: $("$venv/bin/cfn-lint" --version)" >&2
# checkov asks PyPI for a newer release on every start (even for --version) unless told not to.
echo "checkov: $(CKV_SKIP_PACKAGE_UPDATE_CHECK=true "$venv/bin/checkov" --version)" >&2
touch "$venv/.installed"
echo "installed cfn-lint and checkov in $(( $(date +%s) - start ))s" >&2
echo "$venv/bin"
