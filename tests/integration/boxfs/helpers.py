"""Small helpers shared by the boxfs tests (test_fs_*.py)."""

import datetime
import errno
import hashlib
import os
import pathlib
import random
import re
import shlex
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
BOXFS = os.environ.get("BOXFS", str(REPO / "build" / "fs" / "boxfs"))
SANITIZED = os.environ.get("BOXFS_SANITIZED", "0") == "1"
# argv words put before the daemon's (conftest.py: BOXFS_WRAPPER)
WRAPPER = shlex.split(os.environ.get("BOXFS_WRAPPER", ""))

EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def data_of(n, seed=0):
    """n deterministic pseudo-random bytes (fast even for 100 MB)."""
    return random.Random(seed).randbytes(n)


def box_time(s):
    """RFC 3339 (as Box sends it, with an offset or Z) -> epoch seconds."""
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(s).timestamp()


def rfc3339(epoch):
    return datetime.datetime.fromtimestamp(
        int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def put(client, parent_id, name, data, mtime=None):
    """Upload a file through the API; mtime is epoch seconds."""
    return client.upload(parent_id, name, data, mtime=mtime)


def server_file(client, path):
    """The server's view of the file at path ('a/b.txt'), or None."""
    return client.find(path)


def assert_server_file(client, path, data):
    """The server stores exactly `data` at `path`: size, sha1, bytes."""
    f = client.find(path)
    assert f is not None, "%s missing on the server" % path
    assert f["type"] == "file", f
    full = client.get_file(f["id"])
    assert int(full["size"]) == len(data), (path, full["size"], len(data))
    assert full["sha1"] == sha1(data), (path, full["sha1"])
    assert client.download(f["id"]) == data, "%s: bytes differ" % path
    return full


def names(client, folder_id):
    return sorted(e["name"] for e in client.list(folder_id))


def errno_of(fn, *args, **kw):
    """Run fn; return the errno of the OSError it raised, or 0."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


def expect_errno(code, fn, *args, **kw):
    got = errno_of(fn, *args, **kw)
    assert got == code, "%s%r: expected %s, got %s" % (
        getattr(fn, "__name__", fn), args, errno.errorcode[code],
        errno.errorcode.get(got, got) if got else "success")


def run(*argv, check=True, timeout=60, **kw):
    """Run a real program; returns CompletedProcess (text)."""
    kw.setdefault("text", True)
    if "env" in kw:
        kw["env"] = dict(os.environ, **kw["env"])
    r = subprocess.run([str(a) for a in argv], capture_output=True,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        err = r.stderr if isinstance(r.stderr, str) else \
            r.stderr.decode(errors="replace")
        pytest.fail("%s exited %d: %s" % (" ".join(map(str, argv)),
                                          r.returncode, err.strip()))
    return r


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """open/write/close with errors surfacing from close() too."""
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view[:1 << 20])
            view = view[n:]
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def wait_until(cond, timeout=10, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def log_requests(sim, mark, method=None, prefix=None):
    out = []
    for e in sim.log(since=mark):
        if method and e["method"] != method:
            continue
        if prefix and not e["path"].startswith(prefix):
            continue
        out.append(e)
    return out


def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mount_entry(path):
    """The /proc/self/mountinfo entry for `path` as (major:minor, fstype), or
    None.  Reading mountinfo never touches the mount, so it cannot block on
    a hung daemon (os.path.ismount would stat it)."""
    path = os.path.abspath(str(path))  # realpath would lstat the mount
    found = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8",
                  errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 10:
                    continue
                if _unescape_mountinfo(parts[4]) != path:
                    continue
                sep = parts.index("-")
                found = (parts[2], parts[sep + 1])
    except OSError:
        return None
    return found


def is_fuse_mount(path):
    ent = mount_entry(path)
    return ent is not None and ent[1].startswith("fuse")
