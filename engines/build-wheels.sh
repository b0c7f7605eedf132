#!/usr/bin/env bash
# Rebuilds engines/wheels/: the three LocalStack 4.14.0 dependencies PyPI has only as
# source distributions (airspeed_ext 0.6.9, crontab 1.0.5, jsonpath-rw 1.4.0). The engine
# installs run pip with --only-binary :all: (no setup.py runs, no unhashed build
# dependencies; pypa/pip#13984), so these come from the wheels committed here, hashed in
# engines/localstack-requirements.lock next to their sdists' hashes.
#
# The sdists are downloaded against the lock's hashes and built with a fixed
# SOURCE_DATE_EPOCH: the wheels come out byte for byte as committed (compare with
# `sha256sum engines/wheels/*`). Usage: bash engines/build-wheels.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3.13}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One `name==version --hash=...` requirement per pin: its sdist hash only.
awk '/==/{pin=$1} /--hash=sha256:/{if (pin) {print pin " " $1; pin=""}}' \
    <(grep -A1 -E '^(airspeed_ext|crontab|jsonpath-rw)==' engines/localstack-requirements.lock) \
    >"$work/sdists.lock"
"$python" -m pip download --no-deps --no-binary :all: --require-hashes \
    -r "$work/sdists.lock" -d "$work/sdist"
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --no-deps --no-cache-dir \
    -w engines/wheels "$work"/sdist/*
sha256sum engines/wheels/*.whl
