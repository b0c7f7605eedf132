#!/usr/bin/env bash
# Installs cargo-fuzz, pinned, outside the repository, and prints the path of its binary.
# A no-op (prints the path only) when that exact version is already installed.
#
#   CARGO_FUZZ_VERSION   the version to install (default below; bump it here, on purpose)
#   CARGO_FUZZ_ROOT      install root (default ~/.cache/autobackup-tools/cargo-fuzz-VERSION)
#
# Only the stable toolchain is needed: the fuzz targets build with RUSTC_BOOTSTRAP=1 for
# the -Z flags cargo-fuzz passes (see the Makefile's fuzz rules).
set -euo pipefail
version="${CARGO_FUZZ_VERSION:-0.13.2}"
root="${CARGO_FUZZ_ROOT:-$HOME/.cache/autobackup-tools/cargo-fuzz-$version}"
bin="$root/bin/cargo-fuzz"
if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -qx "cargo-fuzz $version"; then
    echo "$bin"
    exit 0
fi
echo "installing cargo-fuzz $version into $root" >&2
start=$(date +%s)
# Its own target dir, removed afterwards: only the binary is kept.
build_dir=$(mktemp -d "${TMPDIR:-/tmp}/cargo-fuzz-build.XXXXXX")
trap 'rm -rf "$build_dir"' EXIT
CARGO_TARGET_DIR="$build_dir" nice -n 10 cargo install --locked --quiet \
    --version "$version" --root "$root" cargo-fuzz >&2
echo "installed cargo-fuzz $version in $(( $(date +%s) - start ))s" >&2
echo "$bin"
