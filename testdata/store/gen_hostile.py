#!/usr/bin/env python3
"""Writes kiln's hostile-archive corpus into hostile/ (or the directory given).

Every archive here must be refused by kiln's layer apply / `kiln import`, with
the target left untouched and nothing outside it changed (cache/tests/hostile.rs).
The output is byte-for-byte reproducible: fixed mtimes, gzip mtime 0, and
zstd run with fixed settings.
"""
import gzip
import io
import os
import subprocess
import sys
import tarfile

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile")
os.makedirs(OUT, exist_ok=True)
MTIME = 1_000_000_000


def info(name, type=tarfile.REGTYPE, **kw):
    i = tarfile.TarInfo(name)
    i.type = type
    i.mtime = MTIME
    i.mode = kw.pop("mode", 0o644)
    for k, v in kw.items():
        setattr(i, k, v)
    return i


def file(t, name, data=b"pwned\n", **kw):
    i = info(name, **kw)
    i.size = len(data)
    t.addfile(i, io.BytesIO(data))


def link(t, name, target, type=tarfile.SYMTYPE, **kw):
    t.addfile(info(name, type=type, linkname=target, **kw))


def make(name, build, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        build(t)
    data = buf.getvalue()
    with open(os.path.join(OUT, name + ".tar"), "wb") as f:
        f.write(data)
    return data


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as g:
        g.write(data)
    return out.getvalue()


# --- tar-slip and absolute names
make("slip-dotdot", lambda t: file(t, "../kiln-hostile-escape"))
make("slip-deep", lambda t: file(t, "a/../../kiln-hostile-escape"))
make("slip-nested", lambda t: (file(t, "a/b/ok"), file(t, "a/b/../../../kiln-hostile-escape")))
make("slip-many", lambda t: file(t, "../" * 40 + "tmp/kiln-hostile-escape"))
make("abs-file", lambda t: file(t, "/tmp/kiln-hostile-abs"))
make("abs-dir", lambda t: t.addfile(info("/tmp/kiln-hostile-absdir/", type=tarfile.DIRTYPE, mode=0o755)))
make("pax-path-dotdot", lambda t: file(t, "x", pax_headers={"path": "../kiln-hostile-escape"}))
make("pax-path-abs", lambda t: file(t, "x", pax_headers={"path": "/tmp/kiln-hostile-abs"}))
make("gnu-longname-dotdot", lambda t: file(t, "../" + "a" * 150), fmt=tarfile.GNU_FORMAT)
make("whiteout-dotdot", lambda t: file(t, "../.wh.victim", b""))
make("whiteout-of-dotdot", lambda t: file(t, "d/.wh...", b""))

# --- symlink escapes: parents that are symlinks, planted earlier in the archive
make("symlink-abs-then-write", lambda t: (link(t, "evil", "/tmp"), file(t, "evil/kiln-hostile-symlink")))
make("symlink-rel-then-write", lambda t: (link(t, "evil", "../../../../.."), file(t, "evil/kiln-hostile-symlink")))
make("symlink-chain", lambda t: (link(t, "a", "b"), link(t, "b", "/tmp"), file(t, "a/kiln-hostile-symlink")))
make("symlink-swap-dir", lambda t: (
    t.addfile(info("d/", type=tarfile.DIRTYPE, mode=0o755)), file(t, "d/ok"),
    link(t, "d", "/tmp"), file(t, "d/kiln-hostile-symlink")))
make("symlink-deep-swap", lambda t: (
    t.addfile(info("a/b/", type=tarfile.DIRTYPE, mode=0o755)), link(t, "a/b", "/"),
    file(t, "a/b/tmp/kiln-hostile-symlink")))
make("symlink-dot-then-write", lambda t: (link(t, "s", "."), link(t, "s2", ".."), file(t, "s2/kiln-hostile-symlink")))
make("symlink-whiteout-through", lambda t: (link(t, "s", "/tmp"), file(t, "s/.wh.kiln-accept-victim", b"")))
make("symlink-opaque-through", lambda t: (link(t, "s", "/tmp"), file(t, "s/.wh..wh..opq", b"")))
make("symlink-hardlink-dir-through", lambda t: (
    link(t, "s", "/etc"), link(t, "h", "s/passwd", type=tarfile.LNKTYPE)))

# --- hard link escapes
make("hardlink-dotdot", lambda t: link(t, "h", "../../../../../../tmp/kiln-hostile-victim", type=tarfile.LNKTYPE))
make("hardlink-abs", lambda t: link(t, "h", "/etc/passwd", type=tarfile.LNKTYPE))
make("hardlink-missing", lambda t: link(t, "h", "not/in/the/layer", type=tarfile.LNKTYPE))
make("hardlink-to-dir", lambda t: (t.addfile(info("d/", type=tarfile.DIRTYPE, mode=0o755)), link(t, "h", "d", type=tarfile.LNKTYPE)))
make("hardlink-pax-linkpath", lambda t: link(t, "h", "ok", type=tarfile.LNKTYPE, pax_headers={"linkpath": "../../etc/passwd"}))

# --- device nodes a layer may not carry
make("device-block-disk", lambda t: t.addfile(info("dev/sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660)))
make("device-char-mem", lambda t: t.addfile(info("dev/mem", type=tarfile.CHRTYPE, devmajor=1, devminor=1, mode=0o640)))
make("device-char-kmsg", lambda t: t.addfile(info("dev/kmsg", type=tarfile.CHRTYPE, devmajor=1, devminor=11, mode=0o644)))

# --- huge and malformed headers
make("huge-pax-header", lambda t: file(t, "x", pax_headers={"comment": "A" * (2 << 20)}))
make("huge-gnu-longname", lambda t: file(t, "n" * (2 << 20)), fmt=tarfile.GNU_FORMAT)
make("pax-size-mismatch", lambda t: file(t, "x", b"1234", pax_headers={"size": "999999"}))
make("sparse-entry", lambda t: file(t, "x", b"", type=tarfile.GNUTYPE_SPARSE), fmt=tarfile.GNU_FORMAT)
make("name-too-long", lambda t: file(t, "/".join(["x" * 200] * 30)))

good = make("_valid-base", lambda t: (t.addfile(info("d/", type=tarfile.DIRTYPE, mode=0o755)), file(t, "d/f", os.urandom(0) or b"y" * 300000)))
os.remove(os.path.join(OUT, "_valid-base.tar"))
bad_sum = bytearray(good)
bad_sum[148:156] = b"0000000\0"
open(os.path.join(OUT, "bad-checksum.tar"), "wb").write(bytes(bad_sum))
open(os.path.join(OUT, "truncated-tar.tar"), "wb").write(good[: len(good) // 2])
open(os.path.join(OUT, "truncated-gzip.tar.gz"), "wb").write(gz(good)[:200])
open(os.path.join(OUT, "garbage-gzip.tar.gz"), "wb").write(b"\x1f\x8b\x08\x00" + b"\xff" * 4096)

# --- decompression bombs by ratio: a few hundred KB that inflate to 200 MB / 1 GiB
def bomb_tar(size):
    hdr = info("zeros")
    hdr.size = size
    head = hdr.tobuf(tarfile.PAX_FORMAT)
    return head, size

head, size = bomb_tar(200 << 20)
out = io.BytesIO()
with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as g:
    g.write(head)
    chunk = b"\0" * (1 << 20)
    for _ in range(size >> 20):
        g.write(chunk)
    g.write(b"\0" * 1024)
open(os.path.join(OUT, "bomb-gzip.tar.gz"), "wb").write(out.getvalue())

head, size = bomb_tar(1 << 30)
z = subprocess.Popen(["zstd", "-q", "-19", "--no-check", "-c"], stdin=subprocess.PIPE,
                     stdout=open(os.path.join(OUT, "bomb-zstd.tar.zst"), "wb"))
z.stdin.write(head)
chunk = b"\0" * (1 << 20)
for _ in range(size >> 20):
    z.stdin.write(chunk)
z.stdin.write(b"\0" * 1024)
z.stdin.close()
assert z.wait() == 0

# Big-but-compressible ones are kept gzipped (apply detects gzip by magic bytes).
for n in ["huge-pax-header", "huge-gnu-longname", "bad-checksum"]:
    src = os.path.join(OUT, n + ".tar")
    open(src + ".gz", "wb").write(gz(open(src, "rb").read()))
    os.remove(src)

print(len(os.listdir(OUT)), "archives in", OUT)
