"""Bounds: the daemon's memory stays within the part budget while a 2 GiB
file is written, and the spool limit turns into ENOSPC (with a log line)
when nothing can drain it."""

import errno
import hashlib
import os

import pytest

from boxfs_helpers import data_of

SANITIZED = os.environ.get("BOXFS_SANITIZED", "0") == "1"
MiB = 1 << 20


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("%s not in /proc/%d/status" % (field, pid))


@pytest.mark.skipif(SANITIZED, reason="sanitizer shadow memory skews RSS")
@pytest.mark.parametrize("declare", [True, False], ids=["stream", "burst"])
@pytest.mark.boxfs_timeout(900)
@pytest.mark.timeout(1000)
def test_memory_within_budget_2gib(boxsim_factory, boxfs_factory, declare):
    budget = 64 * MiB
    sim = boxsim_factory(part_size=8 * MiB)
    m = boxfs_factory(sim, "mem_budget=%d" % budget, "part_parallel=4",
                      "upload_threads=8")
    pid = m.proc.pid
    base = vm_kib(pid, "VmHWM") * 1024
    n = 2 << 30
    chunk = bytes(MiB)
    h = hashlib.sha1()
    fd = os.open(m.path / "big", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if declare:
            os.ftruncate(fd, n)
        for _ in range(n // MiB):
            os.write(fd, chunk)
            h.update(chunk)
        mid = vm_kib(pid, "VmHWM") * 1024
    finally:
        os.close(fd)
    peak = vm_kib(pid, "VmHWM") * 1024
    f = sim.client.find("big")
    assert f is not None
    full = sim.client.get_file(f["id"])
    assert int(full["size"]) == n
    assert full["sha1"] == h.hexdigest()
    # Parts go from the spool (no part-sized buffers); the budget is a
    # generous upper bound, plus 64 MiB for libcurl, FUSE request buffers,
    # thread stacks and the allocator's slack.
    limit = base + budget + 64 * MiB
    print("boxfs VmHWM %d MiB writing %d MiB (start %d MiB, budget %d MiB)" % (
        peak // MiB, n // MiB, base // MiB, budget // MiB))
    assert mid <= limit and peak <= limit, \
        "VmHWM %d MiB (while writing %d MiB), start %d MiB, budget %d MiB" % (
            peak // MiB, mid // MiB, base // MiB, budget // MiB)
    parts = [e for e in sim.log() if e["method"] == "PUT" and
             e["status"] == 200]
    assert len(parts) == n // (8 * MiB)


@pytest.mark.skipif(SANITIZED, reason="sanitizer shadow memory skews RSS")
@pytest.mark.boxfs_timeout(300)
def test_memory_does_not_follow_part_size(boxsim_factory, boxfs_factory):
    """Parts are streamed from the spool, never held whole: with 64 MiB
    parts, 4 in flight and the default budget, the daemon stays far below
    one part's size (a buffer per part made it 4 x 64 MiB)."""
    sim = boxsim_factory(part_size=64 * MiB)
    m = boxfs_factory(sim, "part_parallel=4")
    pid = m.proc.pid
    base = vm_kib(pid, "VmHWM") * 1024
    n = 512 * MiB
    chunk = data_of(MiB, 7)
    h = hashlib.sha1()
    fd = os.open(m.path / "bigparts", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, n)
        for _ in range(n // MiB):
            os.write(fd, chunk)
            h.update(chunk)
    finally:
        os.close(fd)
    peak = vm_kib(pid, "VmHWM") * 1024
    full = sim.client.get_file(sim.client.find("bigparts")["id"])
    assert int(full["size"]) == n and full["sha1"] == h.hexdigest()
    parts = [e for e in sim.log() if e["method"] == "PUT" and
             e["status"] == 200 and e.get("content_range")]
    assert len(parts) == n // (64 * MiB)
    print("boxfs VmHWM %d MiB writing %d MiB in 64 MiB parts (start %d MiB)"
          % (peak // MiB, n // MiB, base // MiB))
    assert peak - base < 48 * MiB, "VmHWM grew by %d MiB" % (
        (peak - base) // MiB)


@pytest.mark.boxfs_timeout(120)
def test_spool_limit_gives_enospc(boxsim_factory, boxfs_factory):
    sim = boxsim_factory(part_size=MiB, chunked_min=2 * MiB)
    m = boxfs_factory(sim, "chunked_min=%d" % (2 * MiB),
                      "spool_max=%d" % (3 * MiB))
    data = data_of(5 * MiB, 1)
    fd = os.open(m.path / "nospace", os.O_WRONLY | os.O_CREAT, 0o644)
    written = 0
    err = 0
    try:
        while written < len(data):
            written += os.write(fd, data[written:written + 256 * 1024])
    except OSError as e:
        err = e.errno
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert err == errno.ENOSPC
    assert 0 < written <= 3 * MiB
    assert "spool limit" in m.stderr_text()
    # Below the limit everything works as usual.
    small = data_of(2 * MiB + 5, 2)
    with open(m.path / "fits", "wb") as f:
        f.write(small)
    got = sim.client.find("fits")
    assert got is not None and got["sha1"] == hashlib.sha1(small).hexdigest()


@pytest.mark.boxfs_timeout(120)
def test_spool_limit_waits_for_a_commit(boxsim_factory, boxfs_factory):
    """At the spool limit a writer waits while another file's upload is
    committing (it frees its spool) instead of failing."""
    import threading
    import time
    sim = boxsim_factory(part_size=MiB, chunked_min=2 * MiB)
    m = boxfs_factory(sim, "chunked_min=%d" % (2 * MiB),
                      "spool_max=%d" % (5 * MiB))
    a = data_of(3 * MiB, 3)
    b = data_of(3 * MiB, 4)
    # A's commit is slow: B runs into the limit while A is committing.
    sim.add_fault("kind=delay,ms=2000,method=POST,"
                  "path=/api/2.0/files/upload_sessions/*/commit")
    fa = os.open(m.path / "A", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fa, a)
    res = {}

    def close_a():
        try:
            os.close(fa)
            res["a"] = 0
        except OSError as e:
            res["a"] = e.errno

    t = threading.Thread(target=close_a)
    t.start()
    time.sleep(0.5)            # A is committing now
    t0 = time.monotonic()
    with open(m.path / "B", "wb") as f:
        f.write(b)             # needs A's spool space back
    waited = time.monotonic() - t0
    t.join(30)
    assert res.get("a") == 0
    assert waited >= 0.5, "B did not wait (%.2f s)" % waited
    for name, data in (("A", a), ("B", b)):
        got = sim.client.find(name)
        assert got is not None and \
            got["sha1"] == hashlib.sha1(data).hexdigest(), name
