"""Streaming: when the final size is declared (posix_fallocate, ftruncate of
an empty file, xattr user.boxfs.size) the session is created at once and the
parts go up while the program is still writing. The request log proves it:
every part is PUT before close() and nothing is sent again at close.
Also: rewriting a part already sent, and a final size different from the
declared one, fall back to a fresh upload without corrupting anything."""

import os
import threading
import time

import pytest

from boxfs_helpers import assert_server_file, data_of, read_file, wait_until
from test_upload_sizes import (CM, PS, SESS, assert_parts_once,
                               committed_session, expected_ranges,
                               final_log, small_sim, upload_requests)


def declare(kind, path, fd, n):
    if kind == "fallocate":
        os.posix_fallocate(fd, 0, n)
    elif kind == "ftruncate":
        os.ftruncate(fd, n)
    elif kind == "xattr":
        os.setxattr(path, "user.boxfs.size", str(n).encode())
    else:
        raise AssertionError(kind)


def ok_puts(sim, mark):
    return [e for e in sim.log(since=mark)
            if e["method"] == "PUT" and e["path"].startswith(SESS + "/")
            and e["status"] == 200]


@pytest.mark.parametrize("kind", ["fallocate", "ftruncate", "xattr"])
@pytest.mark.boxfs_timeout(180)
def test_parts_put_before_close(boxsim_factory, boxfs_factory, kind):
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    n = 6 * PS + 4321
    data = data_of(n, 1)
    path = m.path / ("s-" + kind)
    mark = sim.log_mark()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        declare(kind, path, fd, n)
        if kind != "xattr":
            assert os.fstat(fd).st_size == n
        off = 0
        while off < n:
            off += os.write(fd, data[off:off + 128 * 1024])
        # Every part but the first (held back for a header rewrite), the
        # short tail included, reaches the server while the file is open.
        want = expected_ranges(n, PS)
        wait_until(lambda: len(ok_puts(sim, mark)) >= len(want) - 1,
                   timeout=30, what="all parts but the first PUT before close")
        done = "uploading %d/%d parts" % (len(want) - 1, len(want))
        wait_until(lambda: os.getxattr(path, "user.boxfs.state").decode()
                   == done, timeout=10, what="state " + done)
        before = sim.log(since=mark)
        assert not [e for e in before if e["path"].endswith("/commit")]
        close_mark = sim.log_mark()
    finally:
        os.close(fd)
    after = final_log(sim, close_mark)
    assert [e["content_range"] for e in after if e["method"] == "PUT"] == \
        [want[0]], "only the first part goes at close: %r" % after
    assert [e["status"] for e in after if e["path"].endswith("/commit")] \
        in ([201], [200])
    simple, sessions, creates = upload_requests(final_log(sim, mark))
    assert simple == [] and len(creates) == 1
    assert_parts_once(committed_session(sessions), n, PS)
    assert_server_file(sim.client, "s-" + kind, data)
    assert read_file(path) == data


@pytest.mark.boxfs_timeout(180)
def test_session_starts_while_writing(boxsim_factory, boxfs_factory):
    """Parts are up long before the writer finishes (all but the first,
    which is held back until close)."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    n = 8 * PS
    data = data_of(n, 2)
    mark = sim.log_mark()
    fd = os.open(m.path / "w", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, n)
        os.write(fd, data[:3 * PS])
        wait_until(lambda: len(ok_puts(sim, mark)) >= 2, timeout=30,
                   what="parts 2 and 3 while 5 are still unwritten")
        off = 3 * PS
        while off < n:
            off += os.write(fd, data[off:off + PS])
    finally:
        os.close(fd)
    assert_server_file(sim.client, "w", data)
    assert len(ok_puts(sim, mark)) == 8


@pytest.mark.boxfs_timeout(180)
def test_unknown_size_bursts_at_close(boxsim_factory, boxfs_factory):
    """Without a declared size nothing goes up before close; then the
    session is created and the parts sent."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, "part_parallel=3")
    n = 5 * PS + 1
    data = data_of(n, 3)
    mark = sim.log_mark()
    fd = os.open(m.path / "u", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        off = 0
        while off < n:
            off += os.write(fd, data[off:off + PS // 2])
        time.sleep(0.5)
        assert [e for e in sim.log(since=mark)
                if "upload_sessions" in e["path"]] == []
    finally:
        os.close(fd)
    assert_server_file(sim.client, "u", data)
    simple, sessions, creates = upload_requests(final_log(sim, mark))
    assert len(creates) == 1
    assert_parts_once(committed_session(sessions), n, PS)


@pytest.mark.boxfs_timeout(180)
def test_rewrite_of_sent_part_resends(boxsim_factory, boxfs_factory):
    """A write into a part already on the server (not the first: it is
    held back until close): the session is aborted and the whole file
    re-sent from the spool in a new one."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    n = 4 * PS + 10
    data = bytearray(data_of(n, 4))
    mark = sim.log_mark()
    fd = os.open(m.path / "rw", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, n)
        os.write(fd, bytes(data))
        wait_until(lambda: len(ok_puts(sim, mark)) >= 4, timeout=30,
                   what="all parts but the first up")
        os.pwrite(fd, b"Z" * 100, PS + 50)
        data[PS + 50:PS + 150] = b"Z" * 100
    finally:
        os.close(fd)
    assert_server_file(sim.client, "rw", bytes(data))
    simple, sessions, creates = upload_requests(final_log(sim, mark))
    assert len(creates) == 2, creates
    assert_parts_once(committed_session(sessions), n, PS)
    aborted = [sid for sid, reqs in sessions.items()
               if any(e["method"] == "DELETE" for e in reqs)]
    assert len(aborted) == 1, sessions


@pytest.mark.parametrize("final", [4 * PS - 7, 5 * PS + 3, CM - 10])
@pytest.mark.boxfs_timeout(180)
def test_final_size_differs_from_declared(boxsim_factory, boxfs_factory,
                                          final):
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    declared = 4 * PS
    data = data_of(final, 5)
    path = m.path / "diff"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.setxattr(path, "user.boxfs.size", str(declared).encode())
        os.write(fd, data)
    finally:
        os.close(fd)
    assert_server_file(sim.client, "diff", data)


@pytest.mark.boxfs_timeout(180)
def test_several_writers_at_once(boxsim_factory, boxfs_factory):
    """Files of different kinds written by threads at the same time."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, "part_parallel=2",
                      "upload_threads=4", "mem_budget=%d" % (4 * PS))
    jobs = [(i, n, decl) for i, (n, decl) in enumerate([
        (3 * PS + 1, True), (3 * PS + 1, False), (PS // 2, False),
        (5 * PS, True), (CM, False), (0, False), (2 * PS + 99, True),
        (123457, True)])]
    errors = []

    def writer(i, n, decl):
        try:
            data = data_of(n, 50 + i)
            fd = os.open(m.path / ("c%d" % i), os.O_WRONLY | os.O_CREAT,
                         0o644)
            try:
                if decl:
                    os.ftruncate(fd, n)
                off = 0
                while off < n:
                    off += os.write(fd, data[off:off + 100000])
            finally:
                os.close(fd)
        except Exception as e:  # reported below
            errors.append((i, e))

    threads = [threading.Thread(target=writer, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for i, n, _ in jobs:
        assert_server_file(sim.client, "c%d" % i, data_of(n, 50 + i))


@pytest.mark.parametrize("kind", ["fallocate", "ftruncate"])
@pytest.mark.boxfs_timeout(120)
def test_declared_size_with_unwritten_tail(boxsim_factory, boxfs_factory,
                                           kind):
    """ftruncate/fallocate set the size: what the program did not write
    reads as zeros, on the mount and in Box, and the streamed session is
    still the one committed."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    n = 3 * PS + 10
    head = data_of(PS + 5, 9)
    want = head + bytes(n - len(head))
    mark = sim.log_mark()
    fd = os.open(m.path / "holey", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        declare(kind, m.path / "holey", fd, n)
        os.write(fd, head)
    finally:
        os.close(fd)
    assert os.stat(m.path / "holey").st_size == n
    assert read_file(m.path / "holey") == want
    assert_server_file(sim.client, "holey", want)
    simple, sessions, creates = upload_requests(final_log(sim, mark))
    assert len(creates) == 1, creates
    assert_parts_once(committed_session(sessions), n, PS)


@pytest.mark.boxfs_timeout(120)
def test_fsync_then_keep_writing(boxsim_factory, boxfs_factory):
    """fsync commits what is there; later writes make a new version of the
    same Box id with the whole content."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    first = data_of(CM + 5, 11)
    more = data_of(PS + 3, 12)
    fd = os.open(m.path / "fs", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, first)
        os.fsync(fd)
        f1 = assert_server_file(sim.client, "fs", first)
        os.write(fd, more)
    finally:
        os.close(fd)
    f2 = assert_server_file(sim.client, "fs", first + more)
    assert f2["id"] == f1["id"]
    assert read_file(m.path / "fs") == first + more
