"""Upload of files of every boundary size: single-request below the chunked
minimum, upload sessions at and above it, the parts cut at part_size with a
short tail, bytes and SHA-1 on the server, every part PUT exactly once.

Most tests force small numbers on both sides (boxsim --part-size 1 MiB
--chunked-min 2 MiB, boxfs -o chunked_min=2097152) so that many parts stay
fast; one test uses the real defaults (8 MiB parts, 20,000,000 bytes)."""

import os
import time

import pytest

from boxfs_helpers import assert_server_file, data_of, read_file, write_file

PS = 1 << 20          # forced part size
CM = 2 * PS           # forced chunked minimum
REAL_PS = 8 << 20
REAL_CM = 20000000

SESS = "/api/2.0/files/upload_sessions"


def small_sim(factory, **kw):
    return factory(part_size=PS, chunked_min=CM, **kw)


def session_of(entry):
    """Session id of a request on /api/2.0/files/upload_sessions/<id>[/..]."""
    p = entry["path"]
    if not p.startswith(SESS + "/"):
        return None
    return p[len(SESS) + 1:].split("/")[0]


def upload_requests(log):
    """Split a request log into (simple uploads, {session: requests},
    session creations)."""
    simple, sessions, creates = [], {}, []
    for e in log:
        p = e["path"]
        if e["method"] == "POST" and (p == "/api/2.0/files/content" or
                                      (p.startswith("/api/2.0/files/") and
                                       p.endswith("/content"))):
            simple.append(e)
        elif e["method"] == "POST" and p.endswith("/upload_sessions"):
            creates.append(e)
        else:
            sid = session_of(e)
            if sid:
                sessions.setdefault(sid, []).append(e)
    return simple, sessions, creates


def final_log(sim, mark, timeout=10):
    """The request log since mark, once it holds the request that finished
    the upload (boxsim may write a log line just after its answer went
    out, so close() can return before the line is there)."""
    deadline = time.monotonic() + timeout
    while True:
        log = sim.log(since=mark)
        if any(e["method"] == "POST" and e["status"] in (200, 201) and
               (e["path"].endswith("/commit") or e["path"].endswith("/content"))
               for e in log) or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def expected_ranges(size, ps):
    out, off = [], 0
    while off < size:
        end = min(off + ps, size)
        out.append("bytes %d-%d/%d" % (off, end - 1, size))
        off = end
    return out


def committed_session(sessions):
    """The one session that was committed (201); returns its requests."""
    done = [reqs for reqs in sessions.values()
            if any(e["method"] == "POST" and e["path"].endswith("/commit")
                   and e["status"] in (200, 201) for e in reqs)]
    assert len(done) == 1, "want exactly one committed session: %r" % sessions
    return done[0]


def assert_parts_once(reqs, size, ps):
    """Every part of the session PUT exactly once (accepted), none twice."""
    ok = [e["content_range"] for e in reqs
          if e["method"] == "PUT" and e["status"] == 200]
    assert sorted(ok) == sorted(expected_ranges(size, ps)), ok
    assert len(ok) == len(set(ok)), "a part was sent twice: %r" % ok
    for e in reqs:
        if e["method"] == "PUT" and e["status"] == 200:
            first, last = e["content_range"].split()[1].split("/")[0].split("-")
            assert e["bytes"] == int(last) - int(first) + 1, e


def check_upload(sim, mark, name, data, ps, cm):
    """Bytes and SHA-1 on the server, and the right kind of upload."""
    simple, sessions, creates = upload_requests(final_log(sim, mark))
    assert_server_file(sim.client, name, data)
    if len(data) < cm:
        assert [e["status"] for e in simple] == [201], simple
        assert sessions == {} and creates == [], (sessions, creates)
    else:
        assert simple == [], simple
        assert [e["status"] for e in creates] == [201], creates
        reqs = committed_session(sessions)
        assert_parts_once(reqs, len(data), ps)


SIZES = [0, 1, PS - 1, PS, PS + 1, CM - 1, CM, CM + 1, 5 * PS + 12345]


@pytest.mark.boxfs_timeout(240)
def test_boundary_sizes_unknown_size(boxsim_factory, boxfs_factory):
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    for i, n in enumerate(SIZES):
        data = data_of(n, i)
        name = "u%d" % n
        mark = sim.log_mark()
        write_file(m.path / name, data)
        check_upload(sim, mark, name, data, PS, CM)
        assert os.stat(m.path / name).st_size == n
        assert read_file(m.path / name) == data


@pytest.mark.boxfs_timeout(240)
def test_boundary_sizes_declared(boxsim_factory, boxfs_factory):
    """ftruncate-declared files of every size: sessions at and above the
    minimum, one single request below it; nothing sent twice."""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    for i, n in enumerate([1, PS, CM - 1, CM, CM + 1, 3 * PS, 4 * PS + 1]):
        data = data_of(n, 100 + i)
        name = "d%d" % n
        mark = sim.log_mark()
        fd = os.open(m.path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, n)
            off = 0
            while off < n:
                off += os.write(fd, data[off:off + 200000])
        finally:
            os.close(fd)
        check_upload(sim, mark, name, data, PS, CM)


@pytest.mark.boxfs_timeout(300)
def test_real_defaults(boxsim_factory, boxfs_factory):
    """Default numbers on both sides: 8 MiB parts, 20,000,000-byte minimum."""
    sim = boxsim_factory()
    m = boxfs_factory(sim)
    for i, n in enumerate([REAL_PS - 1, REAL_PS + 1, REAL_CM - 1, REAL_CM,
                           REAL_CM + 1, 3 * REAL_PS + 7]):
        data = data_of(n, 200 + i)
        name = "r%d" % n
        mark = sim.log_mark()
        write_file(m.path / name, data)
        check_upload(sim, mark, name, data, REAL_PS, REAL_CM)


@pytest.mark.boxfs_timeout(180)
def test_new_version_keeps_id_without_download(boxsim_factory, boxfs_factory):
    """O_TRUNC + write on an existing file: a new version (same Box id),
    chunked when large, and the old content is never downloaded."""
    sim = small_sim(boxsim_factory)
    old = sim.client.upload("0", "v.bin", data_of(CM + 5, 1))
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    for i, n in enumerate([CM + PS + 3, 100, 3 * PS]):
        data = data_of(n, 300 + i)
        mark = sim.log_mark()
        write_file(m.path / "v.bin", data)
        log = final_log(sim, mark)  # before our own checks download it
        full = assert_server_file(sim.client, "v.bin", data)
        assert full["id"] == old["id"]
        assert not [e for e in log if e["method"] == "GET" and
                    e["path"].endswith("/content")], "old content fetched"
        simple, sessions, creates = upload_requests(log)
        if n >= CM:
            assert [e["path"] for e in creates] == [
                "/api/2.0/files/%s/upload_sessions" % old["id"]]
            assert_parts_once(committed_session(sessions), n, PS)
        else:
            assert [e["path"] for e in simple] == [
                "/api/2.0/files/%s/content" % old["id"]]


@pytest.mark.boxfs_timeout(180)
def test_partial_overwrite_and_append(boxsim_factory, boxfs_factory):
    """Writes into an existing file without O_TRUNC keep the rest of it."""
    sim = small_sim(boxsim_factory)
    base = data_of(CM + 100, 7)
    old = sim.client.upload("0", "p.bin", base)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    fd = os.open(m.path / "p.bin", os.O_WRONLY)
    try:
        os.pwrite(fd, b"X" * 1000, PS + 10)
    finally:
        os.close(fd)
    want = bytearray(base)
    want[PS + 10:PS + 1010] = b"X" * 1000
    assert assert_server_file(sim.client, "p.bin", bytes(want))["id"] == old["id"]
    with open(m.path / "p.bin", "ab") as f:
        f.write(b"tail" * 1000)
    want += b"tail" * 1000
    assert_server_file(sim.client, "p.bin", bytes(want))
    assert read_file(m.path / "p.bin") == bytes(want)


@pytest.mark.boxfs_timeout(120)
def test_mtime_committed(boxsim_factory, boxfs_factory):
    """content_modified_at set while the file is open lands with the commit
    of a chunked upload."""
    from boxfs_helpers import box_time
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    data = data_of(CM + 3, 9)
    fd = os.open(m.path / "t.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.utime(fd, (1500000000, 1500000000))
    finally:
        os.close(fd)
    full = assert_server_file(sim.client, "t.bin", data)
    assert box_time(full["content_modified_at"]) == 1500000000
    assert int(os.stat(m.path / "t.bin").st_mtime) == 1500000000
