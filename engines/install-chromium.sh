#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver, pinned, outside the repository (for the HTML
# report's browser test, harness/tests/report_browser.rs), and prints the directory holding
# `chromium` and `chromedriver` launchers. A no-op (prints the directory only) when that
# exact version is already installed.
#
#   CHROMIUM_VERSION   the Debian package version (default below; bump it here, on purpose,
#                      to one `apt-cache policy chromium` offers)
#   CHROMIUM_ROOT      install root (default $HARNESS_CACHE_DIR/tools/chromium-VERSION,
#                      HARNESS_CACHE_DIR defaulting to ~/.cache/autobackup-harness); it is
#                      replaced (rm -rf), so it must lie inside that cache
#
# Nothing is installed system-wide: the packages (chromium, chromium-common,
# chromium-driver, and the shared libraries they need that this machine lacks, as apt
# resolves them without recommends) are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into the root; the launchers set LD_LIBRARY_PATH to the unpacked libraries.
# Needs Debian's package registry (apt's lists are refreshed once when the pinned version is
# not in them).
set -euo pipefail
version="${CHROMIUM_VERSION:-148.0.7778.167-1~deb12u1}"
cache="${HARNESS_CACHE_DIR:-$HOME/.cache/autobackup-harness}"
root="${CHROMIUM_ROOT:-$cache/tools/chromium-$version}"
bin="$root/bin"

if [[ -x "$bin/chromium" && -x "$bin/chromedriver" && -f "$root/.installed" ]]; then
    echo "$bin"
    exit 0
fi
# The root (CHROMIUM_ROOT may come from the environment) is removed with `rm -rf` below: it
# must lie strictly inside the harness cache, with symlinks and `..` resolved, and neither
# it nor the cache may be /, empty or $HOME.
real() { realpath -m -- "$1" 2>/dev/null; }
real_cache=$(real "$cache") || real_cache=
real_root=$(real "$root") || real_root=
real_home=$(real "${HOME:-/}") || real_home=/
if [[ -z $real_cache || $real_cache == / || $real_cache == "$real_home" ||
      -z $real_root || $real_root == / || $real_root == "$real_home" ||
      $real_root != "$real_cache"/* ]]; then
    echo "install-chromium: refusing install root '$root': not inside the harness cache '$cache' (HARNESS_CACHE_DIR), or that cache is /, empty or \$HOME" >&2
    exit 2
fi
for tool in apt-get apt-cache dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "install-chromium: needs $tool (a Debian system)" >&2; exit 2; }
done
echo "installing chromium $version into $root" >&2
start=$(date +%s)

if ! apt-cache show "chromium=$version" >/dev/null 2>&1; then
    echo "install-chromium: chromium=$version not in apt's lists; running apt-get update" >&2
    apt-get update -qq >&2
fi
apt-cache show "chromium=$version" >/dev/null 2>&1 || {
    echo "install-chromium: Debian offers no chromium=$version (apt-cache policy chromium lists what it has); set CHROMIUM_VERSION" >&2
    exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/chromium-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
# What apt would install for the pinned packages on this machine (name=version each).
apt-get install --simulate --no-install-recommends -qq \
    "chromium=$version" "chromium-common=$version" "chromium-driver=$version" 2>/dev/null \
    | awk '/^Inst / { v = $3; gsub(/[()]/, "", v); print $2 "=" v }' >"$work/packages"
grep -q "^chromium=" "$work/packages" || {
    echo "install-chromium: apt would not install chromium=$version here:" >&2
    apt-get install --simulate --no-install-recommends "chromium=$version" >&2 || true
    exit 2
}
echo "install-chromium: $(wc -l <"$work/packages") packages: $(tr '\n' ' ' <"$work/packages")" >&2
# As root, apt would drop to its sandbox user, which cannot write the private work dir.
sandbox=()
[[ $(id -u) -eq 0 ]] && sandbox=(-o APT::Sandbox::User=root)
(cd "$work" && xargs apt-get download -qq "${sandbox[@]}" <packages) >&2

staging="$root.partial"
rm -rf "$staging"
mkdir -p "$staging/bin"
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$staging/root"
done
lib="$root/root/usr/lib/x86_64-linux-gnu:$root/root/usr/lib/x86_64-linux-gnu/pulseaudio:$root/root/usr/lib/chromium"
cat >"$staging/bin/chromium" <<EOF
#!/bin/sh
# Chromium $version unpacked by engines/install-chromium.sh.
export LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$root/root/usr/lib/chromium/chromium" "\$@"
EOF
cat >"$staging/bin/chromedriver" <<EOF
#!/bin/sh
# ChromeDriver $version unpacked by engines/install-chromium.sh.
export LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$root/root/usr/bin/chromedriver" "\$@"
EOF
chmod 755 "$staging/bin/chromium" "$staging/bin/chromedriver"
echo "$version" >"$staging/.installed"
rm -rf "$root"
mv "$staging" "$root"

# Both start here, or the install is removed (a half-working browser helps no one).
if ! "$bin/chromium" --version >&2 || ! "$bin/chromedriver" --version >&2; then
    echo "install-chromium: the unpacked chromium does not start; missing libraries:" >&2
    LD_LIBRARY_PATH="$lib" ldd "$root/root/usr/lib/chromium/chromium" | grep "not found" >&2 || true
    rm -rf "$root"
    exit 2
fi
echo "installed chromium $version in $(( $(date +%s) - start ))s" >&2
echo "$bin"
