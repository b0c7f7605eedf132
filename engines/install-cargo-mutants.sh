#!/usr/bin/env bash
# Installs cargo-mutants, pinned, outside the repository, and prints the path of its binary.
# A no-op (prints the path only) when that exact version is already installed.
#
#   CARGO_MUTANTS_VERSION   the version to install (default below; bump it here, on purpose)
#   CARGO_MUTANTS_ROOT      install root (default ~/.cache/autobackup-tools/cargo-mutants-VERSION)
set -euo pipefail
version="${CARGO_MUTANTS_VERSION:-27.1.0}"
root="${CARGO_MUTANTS_ROOT:-$HOME/.cache/autobackup-tools/cargo-mutants-$version}"
bin="$root/bin/cargo-mutants"
# Run as cargo runs it (`cargo-mutants mutants ...`), or it knows no options.
if [[ -x "$bin" ]] && "$bin" mutants --version 2>/dev/null | grep -qx "cargo-mutants $version"; then
    echo "$bin"
    exit 0
fi
echo "installing cargo-mutants $version into $root" >&2
start=$(date +%s)
# Its own target dir, removed afterwards: only the binary is kept.
build_dir=$(mktemp -d "${TMPDIR:-/tmp}/cargo-mutants-build.XXXXXX")
trap 'rm -rf "$build_dir"' EXIT
CARGO_TARGET_DIR="$build_dir" nice -n 10 cargo install --locked --quiet \
    --version "$version" --root "$root" cargo-mutants >&2
echo "installed cargo-mutants $version in $(( $(date +%s) - start ))s" >&2
echo "$bin"
