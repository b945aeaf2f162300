"""Reading: a 100 MB file streams through cat/cmp, reads are right at EOF and
past it, random ranged reads return the server's bytes."""

import os
import random
import time

import pytest

from boxfs_helpers import (SANITIZED, data_of, log_requests, put, read_file,
                           run, sha1, wait_until)


def peak_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.boxfs_timeout(300)
def test_cat_and_cmp_100mb(sim, boxfs_factory, tmp_path):
    size = 100 * 1000 * 1000 + 7    # not a multiple of any block size
    data = data_of(size, 42)
    f = put(sim.client, "0", "big.bin", data)
    srv = sim.client.get_file(f["id"])
    assert int(srv["size"]) == size and srv["sha1"] == sha1(data)
    local = tmp_path / "big.local"
    local.write_bytes(data)
    m = boxfs_factory(sim)
    mark = sim.log_mark()
    assert os.stat(m.path / "big.bin").st_size == size
    out = run("sh", "-c", 'cat "$1" | sha1sum', "sh", m.path / "big.bin",
              timeout=240).stdout.split()[0]
    assert out == sha1(data)
    # Read-ahead: far fewer GETs than the kernel's 128 KiB reads (~800).
    gets = [e for e in log_requests(sim, mark, "GET")
            if e["path"] == "/2.0/files/%s/content" % f["id"]]
    assert 1 <= len(gets) <= 200, len(gets)
    r = run("cmp", local, m.path / "big.bin", check=False, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    del data
    if not SANITIZED:
        # Streams: the daemon never holds the whole file.
        assert peak_rss(m.proc.pid) < size // 2, peak_rss(m.proc.pid)
    r = run("dd", "if=%s" % (m.path / "big.bin"), "of=/dev/stdout", "bs=1M",
            "skip=90", "count=1", "status=none", text=False)
    assert r.stdout == data_of(size, 42)[90 << 20:91 << 20]


def test_reads_at_and_past_eof(sim, boxfs_factory):
    data = data_of(1000, 5)
    put(sim.client, "0", "k.bin", data)
    put(sim.client, "0", "zero", b"")
    m = boxfs_factory(sim)
    fd = os.open(m.path / "k.bin", os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 950) == data[950:]        # short at EOF
        assert os.pread(fd, 100, 1000) == b""              # at EOF
        assert os.pread(fd, 100, 1001) == b""              # just past
        assert os.pread(fd, 4096, 1 << 40) == b""          # far past
        assert os.pread(fd, 1 << 20, 0) == data            # bigger than file
        assert os.lseek(fd, 0, os.SEEK_END) == 1000
        assert os.read(fd, 10) == b""
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(fd, 333)
            if not b:
                break
            chunks.append(b)
        assert b"".join(chunks) == data
    finally:
        os.close(fd)
    assert read_file(m.path / "zero") == b""
    fd = os.open(m.path / "zero", os.O_RDONLY)
    try:
        assert os.pread(fd, 10, 0) == b""
        assert os.pread(fd, 10, 5) == b""
    finally:
        os.close(fd)
    r = run("dd", "if=%s" % (m.path / "k.bin"), "of=/dev/stdout", "bs=100",
            "skip=9", "status=none", text=False)
    assert r.stdout == data[900:]


def test_random_ranged_reads(sim, boxfs_factory):
    data = data_of(3 * 1024 * 1024 + 123, 9)
    put(sim.client, "0", "r.bin", data)
    m = boxfs_factory(sim)
    rnd = random.Random(1)
    fd = os.open(m.path / "r.bin", os.O_RDONLY)
    try:
        for _ in range(200):
            off = rnd.randrange(0, len(data) + 100)
            n = rnd.choice([1, 17, 4096, 65536, 200000])
            assert os.pread(fd, n, off) == data[off:off + n], (off, n)
    finally:
        os.close(fd)
    # Two readers at once see the same bytes.
    with open(m.path / "r.bin", "rb") as a, open(m.path / "r.bin", "rb") as b:
        a.seek(1000000)
        assert b.read(5000) == data[:5000]
        assert a.read(5000) == data[1000000:1005000]


def test_read_retries_500_and_429(sim, boxfs_factory):
    data = data_of(6 * 1024 * 1024 + 5, 12)  # several ranged GETs
    f = put(sim.client, "0", "flaky.bin", data)
    path = "/2.0/files/%s/content" % f["id"]
    sim.add_fault("kind=status,status=500,method=GET,path=%s" % path)
    sim.add_fault("kind=status,status=429,retry_after=1,method=GET,"
                  "path=%s,nth=3" % path)
    m = boxfs_factory(sim)
    mark = sim.log_mark()
    assert read_file(m.path / "flaky.bin") == data
    got = [e["status"] for e in log_requests(sim, mark, "GET")
           if e["path"] == path]
    assert got[0] == 500 and 429 in got, got
    assert got.count(500) == 1 and got.count(429) == 1, got


def bdi_read_ahead_kb(path):
    st = os.stat(path)
    p = "/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(st.st_dev),
                                                os.minor(st.st_dev))
    with open(p) as f:
        return int(f.read())


@pytest.mark.skipif(os.geteuid() != 0, reason="sysfs is writable by root only")
def test_read_ahead_raised_for_the_mount(sim, boxfs_factory):
    """The kernel caps FUSE read-ahead at 128 KiB; boxfs raises its mount's
    to read_ahead_kb (default 1024), and 0 leaves the kernel's value. A
    bad value is refused with one line."""
    # set just after the kernel's INIT exchange (which would overwrite it)
    m = boxfs_factory(sim)
    wait_until(lambda: bdi_read_ahead_kb(m.path) == 1024, timeout=10,
               what="read_ahead_kb 1024")
    m2 = boxfs_factory(sim, "read_ahead_kb=4096")
    wait_until(lambda: bdi_read_ahead_kb(m2.path) == 4096, timeout=10,
               what="read_ahead_kb 4096")
    m3 = boxfs_factory(sim, "read_ahead_kb=0")
    time.sleep(0.5)     # what the other two needed: nothing may change it
    assert bdi_read_ahead_kb(m3.path) == 128
    # sequential reads then come in larger pieces: bytes still right
    data = data_of(3 * 1024 * 1024 + 5, 9)
    put(sim.client, "0", "ra.bin", data)
    assert sha1(read_file(m.path / "ra.bin")) == sha1(data)
    bad = boxfs_factory(sim, "read_ahead_kb=70000", wait=False)
    assert bad.wait_exit(30) != 0
    err = bad.stderr_text()
    assert "read_ahead_kb" in err and len(err.strip().splitlines()) == 1, err
