"""Faults during uploads: a 500 and a connection reset on a part and a 202
on commit still end committed; a refused commit makes close() fail with EIO
and leaves nothing in Box; a stopped or hanging server makes close() fail
within the configured timeouts instead of hanging."""

import errno
import os
import time

import pytest

from boxfs_helpers import assert_server_file, data_of, wait_until
from test_upload_sizes import (CM, PS, SESS, assert_parts_once,
                               committed_session, final_log, small_sim,
                               upload_requests)

PARTS = "method=PUT,path=%s/*" % SESS
COMMIT = "method=POST,path=%s/*/commit" % SESS


def write_declared(path, data, declare=True):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if declare:
            os.ftruncate(fd, len(data))
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:off + 256 * 1024])
    finally:
        os.close(fd)


def close_errno(path, data, declare=True):
    try:
        write_declared(path, data, declare)
    except OSError as e:
        return e.errno
    return 0


@pytest.mark.parametrize("spec", [
    "kind=status,status=500,nth=2," + PARTS,
    "kind=status,status=503,retry_after=1,nth=1,count=2," + PARTS,
    "kind=reset,after=0,nth=3," + PARTS,
    "kind=reset,after=300000,nth=2," + PARTS,
])
@pytest.mark.parametrize("declare", [True, False], ids=["stream", "burst"])
@pytest.mark.boxfs_timeout(180)
def test_part_fault_still_commits(boxsim_factory, boxfs_factory, spec,
                                  declare):
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, "retries=5")
    n = 4 * PS + 77
    data = data_of(n, 1)
    mark = sim.log_mark()
    sim.add_fault(spec)
    write_declared(m.path / "f", data, declare)
    assert_server_file(sim.client, "f", data)
    log = final_log(sim, mark)
    assert [e for e in log if e.get("fault")], "the fault never fired"
    simple, sessions, creates = upload_requests(log)
    assert_parts_once(committed_session(sessions), n, PS)


@pytest.mark.boxfs_timeout(180)
def test_commit_202_then_committed(boxsim_factory, boxfs_factory):
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    data = data_of(3 * PS + 5, 2)
    mark = sim.log_mark()
    sim.add_fault("kind=commit202,retry_after=1,count=2," + COMMIT)
    write_declared(m.path / "c202", data)
    assert_server_file(sim.client, "c202", data)
    commits = [e["status"] for e in final_log(sim, mark)
               if e["path"].endswith("/commit")]
    assert commits[:2] == [202, 202] and commits[-1] in (200, 201), commits


@pytest.mark.parametrize("size,spec", [
    (3 * PS + 1, "kind=status,status=409,count=0," + COMMIT),
    (3 * PS + 1, "kind=status,status=400,count=0," + COMMIT),
    (1000, "kind=status,status=409,count=0,method=POST,"
           "path=/api/2.0/files/content"),
], ids=["commit409", "commit400", "simple409"])
@pytest.mark.boxfs_timeout(180)
def test_refused_commit_fails_close(boxsim_factory, boxfs_factory, size,
                                    spec):
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, "retries=2")
    data = data_of(size, 3)
    sim.add_fault(spec)
    assert close_errno(m.path / "refused", data) == errno.EIO
    assert sim.client.find("refused") is None, "a refused upload left a file"
    assert sim.client.list("0") == []
    # The data is kept; the state says why it is not in Box (once the
    # commit that release() tries again has failed as well).
    path = m.path / "refused"
    wait_until(lambda: os.getxattr(path, "user.boxfs.state").decode()
               .startswith("failed"), timeout=20, what="state failed: ...")
    assert sim.client.find("refused") is None
    sim.clear_faults()


@pytest.mark.boxfs_timeout(180)
def test_stopped_server_fails_close_in_time(boxsim_factory, boxfs_factory):
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, "io_timeout=3",
                      "connect_timeout=2", "retries=2")
    n = 6 * PS
    data = data_of(n, 4)
    fd = os.open(m.path / "gone", os.O_WRONLY | os.O_CREAT, 0o644)
    err = 0
    t0 = time.monotonic()
    try:
        os.ftruncate(fd, n)
        os.write(fd, data[:2 * PS])
        sim.kill()
        off = 2 * PS
        while off < n:
            off += os.write(fd, data[off:off + PS])
        t0 = time.monotonic()
    finally:
        try:
            os.close(fd)
        except OSError as e:
            err = e.errno
    took = time.monotonic() - t0
    assert err == errno.EIO, err
    assert took < 60, "close took %.1f s" % took


@pytest.mark.boxfs_timeout(180)
def test_hanging_server_fails_close_in_time(boxsim_factory, boxfs_factory):
    """The server accepts the commit but never answers: io_timeout ends it."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, "io_timeout=2",
                      "connect_timeout=2", "retries=1")
    data = data_of(2 * PS + 3, 5)
    sim.add_fault("kind=delay,ms=40000,count=0," + COMMIT)
    t0 = time.monotonic()
    assert close_errno(m.path / "hang", data) == errno.EIO
    took = time.monotonic() - t0
    assert took < 30, "close took %.1f s" % took
    assert sim.client.find("hang") is None
    sim.clear_faults()


@pytest.mark.boxfs_timeout(120)
def test_failed_upload_retried_by_fsync(boxsim_factory, boxfs_factory):
    """After a failed commit the data stays: the next fsync sends it."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, "retries=1")
    data = data_of(3 * PS, 6)
    fd = os.open(m.path / "again", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        fid = sim.add_fault("kind=status,status=409,count=0," + COMMIT)
        with pytest.raises(OSError) as ei:
            os.fsync(fd)
        assert ei.value.errno == errno.EIO
        assert sim.client.find("again") is None
        st = os.getxattr(m.path / "again", "user.boxfs.state").decode()
        assert st.startswith("failed: "), st
        del fid
        sim.clear_faults()
        os.fsync(fd)
        assert_server_file(sim.client, "again", data)
    finally:
        os.close(fd)
    wait_until(lambda: sim.client.find("again") is not None)
