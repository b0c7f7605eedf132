#!/usr/bin/env python3
"""Pins every artefact of an engine lock by its sha256, for `pip install --require-hashes`.

    <venv>/bin/pip download --no-deps -r engines/X-requirements.lock -d /tmp/X
    python3 engines/hash-lock.py engines/X-requirements.lock /tmp/X

Run the download with the venv's own pip (the interpreter the harness installs with), so
the wheels chosen are the ones `pip install` will choose on this platform (Linux x86_64,
CPython as found by the harness). Each `name==version` line of the lock gets the hash of
the file downloaded for it; a pin without a downloaded file is an error. Releases that
publish no wheel (sdists, built at install time) are listed on stderr.
"""
import hashlib
import os
import re
import sys


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def artefacts(folder):
    by_pin = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".whl"):
            name, version = f.split("-")[:2]
        elif f.endswith(".tar.gz") or f.endswith(".zip"):
            stem = f[: -len(".tar.gz")] if f.endswith(".tar.gz") else f[: -len(".zip")]
            name, version = stem.rsplit("-", 1)
            print(f"{f}: no wheel, built from source at install", file=sys.stderr)
        else:
            continue
        with open(os.path.join(folder, f), "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        by_pin.setdefault((norm(name), version), []).append(digest)
    return by_pin


def main(lock, folder):
    found = artefacts(folder)
    out = []
    for line in open(lock):
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line)
        if not m:
            continue
        name, version = m.group(1), m.group(2)
        digests = found.get((norm(name), version))
        if not digests:
            sys.exit(f"{lock}: no downloaded artefact for {name}=={version} in {folder}")
        out.append(
            f"{name}=={version} \\\n"
            + " \\\n".join(f"    --hash=sha256:{d}" for d in sorted(digests))
        )
    with open(lock, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
