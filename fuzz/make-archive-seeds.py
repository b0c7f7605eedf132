#!/usr/bin/env python3
"""Writes the archive_reader seeds (fuzz/corpus/archive_reader/*.tar.gz): tiny gzip'd tars
with each kind of entry the agent's unpacker handles or refuses. Deterministic output.

    python3 fuzz/make-archive-seeds.py
"""
import gzip
import io
import os
import tarfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "archive_reader")
MTIME = 1700000000


def mk(name, build, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        build(t)
    data = gzip.compress(buf.getvalue(), compresslevel=9, mtime=0)
    with open(os.path.join(OUT, f"{name}.tar.gz"), "wb") as f:
        f.write(data)
    print(f"{name}.tar.gz: {len(data)} bytes")


def info(path, typ=tarfile.REGTYPE, mode=0o644, link=""):
    ti = tarfile.TarInfo(path)
    ti.type, ti.mode, ti.mtime, ti.linkname = typ, mode, MTIME, link
    return ti


def add_file(t, path, content=b"", mode=0o644):
    ti = info(path, mode=mode)
    ti.size = len(content)
    t.addfile(ti, io.BytesIO(content))


def tree(t):
    t.addfile(info("./", tarfile.DIRTYPE, 0o755))
    t.addfile(info("docs", tarfile.DIRTYPE, 0o750))
    add_file(t, "docs/a.txt", b"hello\n")
    add_file(t, "docs/run.sh", b"#!/bin/sh\n", 0o4755)
    t.addfile(info("docs/link", tarfile.SYMTYPE, link="a.txt"))
    t.addfile(info("docs/hard", tarfile.LNKTYPE, link="docs/a.txt"))


def gnu_long(t):
    add_file(t, "d/" + "n" * 150 + ".txt", b"long name")
    t.addfile(info("l" * 120, tarfile.SYMTYPE, link="target/" + "t" * 120))


def pax(t):
    ti = info("pax/" + "p" * 130)
    ti.size = 3
    ti.pax_headers = {"mtime": "1700000000.5", "uid": "1000"}
    t.addfile(ti, io.BytesIO(b"abc"))


def dotdot(t):
    add_file(t, "../escape.txt", b"x")


def through_symlink(t):
    t.addfile(info("out", tarfile.SYMTYPE, link="/tmp"))
    add_file(t, "out/evil.txt", b"x")


def fifo(t):
    t.addfile(info("pipe", tarfile.FIFOTYPE))


def empty(t):
    pass


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    mk("tree", tree)
    mk("gnu-longname", gnu_long)
    mk("pax", pax, tarfile.PAX_FORMAT)
    mk("dotdot", dotdot)
    mk("through-symlink", through_symlink)
    mk("fifo", fifo)
    mk("empty", empty)
