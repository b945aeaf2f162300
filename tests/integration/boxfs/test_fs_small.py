"""Small-file writes: cp round trips (bytes and SHA-1 on the server), one
single-request upload per file at close, empty files, new versions that keep
the Box id, utimens -> content_modified_at, chmod/chown, errors from close()."""

import errno
import os
import stat
import time

import pytest

from boxfs_helpers import (EMPTY_SHA1, assert_server_file, box_time, data_of,
                           errno_of, log_requests, names, put, read_file, run,
                           sha1, write_file)

SIZES = [1, 100, 4095, 4096, 4097, 65536, 131073, 1 << 20, 5 * 1000 * 1000 + 3]


def simple_uploads(sim, mark):
    return [e for e in log_requests(sim, mark, "POST")
            if e["path"] == "/api/2.0/files/content"]


def session_requests(sim, mark):
    return [e for e in sim.log(since=mark) if "upload_sessions" in e["path"]]


def test_cp_round_trips(sim, mnt, tmp_path):
    c = sim.client
    src = tmp_path / "src"
    src.mkdir()
    for i, n in enumerate(SIZES):
        (src / ("f%d" % n)).write_bytes(data_of(n, i))
    mark = sim.log_mark()
    for n in SIZES:
        run("cp", src / ("f%d" % n), mnt.path / ("f%d" % n))
    ups = simple_uploads(sim, mark)
    assert [e["status"] for e in ups] == [201] * len(SIZES), \
        "want exactly one single-request upload per file: %r" % ups
    assert session_requests(sim, mark) == []
    for i, n in enumerate(SIZES):
        data = data_of(n, i)
        assert_server_file(c, "f%d" % n, data)
        assert os.stat(mnt.path / ("f%d" % n)).st_size == n
        assert read_file(mnt.path / ("f%d" % n)) == data
    # And back out again, with cp -r of a whole tree.
    os.mkdir(mnt.path / "tree")
    run("cp", "-r", src, mnt.path / "tree/")
    out = tmp_path / "out"
    run("cp", "-r", mnt.path / "tree/src", out)
    for i, n in enumerate(SIZES):
        assert (out / ("f%d" % n)).read_bytes() == data_of(n, i)
        assert_server_file(c, "tree/src/f%d" % n, data_of(n, i))


def test_write_in_pieces_then_close(sim, mnt):
    data = data_of(300000, 11)
    fd = os.open(mnt.path / "pieces", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                 0o644)
    try:
        for off in range(0, len(data), 7000):
            assert os.write(fd, data[off:off + 7000]) == \
                len(data[off:off + 7000])
        # Reads of a file being written see its data.
        assert os.stat(mnt.path / "pieces").st_size == len(data)
        with open(mnt.path / "pieces", "rb") as r:
            assert r.read() == data
    finally:
        os.close(fd)
    assert_server_file(sim.client, "pieces", data)


def test_empty_files(sim, mnt):
    c = sim.client
    put(c, "0", "was_full", b"some bytes")
    mark = sim.log_mark()
    run("touch", mnt.path / "touched")
    fd = os.open(mnt.path / "opened", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    run("cp", "/dev/null", mnt.path / "copied")
    for n in ("touched", "opened", "copied"):
        f = assert_server_file(c, n, b"")
        assert f["sha1"] == EMPTY_SHA1
        st = os.stat(mnt.path / n)
        assert stat.S_ISREG(st.st_mode) and st.st_size == 0
        assert read_file(mnt.path / n) == b""
    assert session_requests(sim, mark) == []
    # Truncating an existing file to nothing: a new version, same id.
    fid = c.find("was_full")["id"]
    with open(mnt.path / "was_full", "wb"):
        pass
    assert c.find("was_full")["id"] == fid
    assert_server_file(c, "was_full", b"")
    assert os.stat(mnt.path / "was_full").st_size == 0
    assert names(c, "0") == ["copied", "opened", "touched", "was_full"]


def test_overwrite_is_a_new_version_with_the_same_id(sim, mnt):
    c = sim.client
    f = put(c, "0", "doc.txt", b"version one")
    etag = c.get_file(f["id"])["etag"]
    mark = sim.log_mark()
    write_file(mnt.path / "doc.txt", b"version two, longer")
    assert c.find("doc.txt")["id"] == f["id"]
    srv = assert_server_file(c, "doc.txt", b"version two, longer")
    assert srv["etag"] != etag
    vers = [e for e in log_requests(sim, mark, "POST")
            if e["path"] == "/api/2.0/files/%s/content" % f["id"]]
    assert [e["status"] for e in vers] == [200], vers  # 200 per the spec
    assert simple_uploads(sim, mark) == []
    assert read_file(mnt.path / "doc.txt") == b"version two, longer"
    # Shorter again, through cp.
    run("sh", "-c", 'printf v3 > "$1"', "sh", mnt.path / "doc.txt")
    assert_server_file(c, "doc.txt", b"v3")
    assert c.find("doc.txt")["id"] == f["id"]
    assert os.stat(mnt.path / "doc.txt").st_size == 2


def test_touch_sets_content_modified_at(sim, mnt):
    c = sim.client
    f = put(c, "0", "t.txt", b"t", mtime=1500000000)
    assert os.stat(mnt.path / "t.txt").st_mtime == 1500000000
    mark = sim.log_mark()
    run("touch", "-m", "-d", "@1600000000", mnt.path / "t.txt")
    srv = c.get_file(f["id"])
    assert box_time(srv["content_modified_at"]) == 1600000000
    assert srv["sha1"] == sha1(b"t"), "utimens must not upload content"
    assert os.stat(mnt.path / "t.txt").st_mtime == 1600000000
    puts = [e for e in log_requests(sim, mark, "PUT")
            if e["path"] == "/2.0/files/%s" % f["id"]]
    assert [e["status"] for e in puts] == [200], puts
    assert not [e for e in log_requests(sim, mark, "POST")
                if "/content" in e["path"]]
    # 1 s precision: fractions are dropped, on the mount and the server.
    os.utime(mnt.path / "t.txt", ns=(1700000000_900000000,
                                     1700000000_900000000))
    st = os.stat(mnt.path / "t.txt")
    assert st.st_mtime_ns % 1000000000 == 0
    assert st.st_mtime in (1700000000, 1700000001)
    assert box_time(c.get_file(f["id"])["content_modified_at"]) == \
        st.st_mtime


def test_new_file_mtime_and_cp_p(sim, mnt, tmp_path):
    c = sim.client
    t0 = int(time.time())
    write_file(mnt.path / "now", b"now")
    srv_t = box_time(c.get_file(c.find("now")["id"])["content_modified_at"])
    assert t0 - 2 <= srv_t <= time.time() + 2
    assert os.stat(mnt.path / "now").st_mtime == srv_t
    # cp -p (what rsync -a relies on): the local mtime reaches the server.
    src = tmp_path / "old"
    src.write_bytes(b"old content")
    os.utime(src, (1300000000, 1300000000))
    run("cp", "-p", src, mnt.path / "old")
    assert os.stat(mnt.path / "old").st_mtime == 1300000000
    srv = c.get_file(c.find("old")["id"])
    assert box_time(srv["content_modified_at"]) == 1300000000
    assert srv["sha1"] == sha1(b"old content")


def test_chmod_chown_succeed(sim, mnt):
    c = sim.client
    put(c, "0", "m.txt", b"mode")
    c.create_folder("0", "dd")
    before = c.tree()
    mark = sim.log_mark()
    os.chmod(mnt.path / "m.txt", 0o600)
    os.chmod(mnt.path / "m.txt", 0o755)
    os.chmod(mnt.path / "dd", 0o700)
    os.chown(mnt.path / "m.txt", os.getuid(), os.getgid())
    os.chown(mnt.path / "m.txt", 1234, 1234)
    os.chown(mnt.path / "dd", -1, 4321)
    run("chmod", "-R", "go-w", mnt.path)
    assert c.tree() == before
    assert not [e for e in sim.log(since=mark)
                if e["method"] in ("POST", "PUT", "DELETE")], \
        "chmod/chown must not change anything on the server"
    assert read_file(mnt.path / "m.txt") == b"mode"


def test_close_reports_upload_error(sim, mnt):
    """close() (FUSE flush) returns the upload's error and nothing appears."""
    c = sim.client
    sim.add_fault("kind=status,status=403,count=0,method=POST,"
                  "path=/api/2.0/files/content")
    got = errno_of(write_file, mnt.path / "denied.txt", b"no")
    assert got == errno.EACCES, errno.errorcode.get(got, got)
    assert c.find("denied.txt") is None
    sim.clear_faults()
    write_file(mnt.path / "fine.txt", b"yes")
    assert_server_file(c, "fine.txt", b"yes")


def test_failed_close_is_not_retried_behind_the_programs_back(sim, mnt):
    """Once close() said EACCES, the file must not appear later (release
    does not retry a failed commit)."""
    sim.add_fault("kind=status,status=403,count=1,method=POST,"
                  "path=/api/2.0/files/content")
    got = errno_of(write_file, mnt.path / "once.txt", b"data")
    assert got == errno.EACCES, errno.errorcode.get(got, got)
    time.sleep(1.5)
    assert sim.client.find("once.txt") is None
    posts = [e for e in sim.log() if e["path"] == "/api/2.0/files/content"]
    assert len(posts) == 1, posts


@pytest.mark.boxfs_timeout(180)
def test_persistent_500_gives_eio_at_close(sim, boxfs_factory):
    m = boxfs_factory(sim, "retries=2")
    sim.add_fault("kind=status,status=500,count=0,method=POST,"
                  "path=/api/2.0/files/content")
    t0 = time.monotonic()
    got = errno_of(write_file, m.path / "broken", b"x" * 1000)
    t1 = time.time()
    assert got == errno.EIO, errno.errorcode.get(got, got)
    assert time.monotonic() - t0 < 120
    assert sim.client.find("broken") is None
    # close() retried (1 + retries attempts) before giving up, and nothing
    # retries after close() reported the failure.
    time.sleep(1)
    tries = [e for e in sim.log() if e["path"] == "/api/2.0/files/content"]
    assert len(tries) == 3, tries
    assert all(e["t"] <= t1 for e in tries), tries
    assert all(e["status"] == 500 for e in tries), tries


def test_open_or_create_finds_a_file_another_client_just_made(sim, mnt):
    """touch / >> / open(O_CREAT) without O_TRUNC or O_EXCL on a name that
    another Box client created after our listing (within dir_ttl) opens the
    existing file: its content is kept (touch) or appended to (>>), never
    replaced by an empty or partial new version."""
    c = sim.client
    assert "t1" not in os.listdir(mnt.path)   # the folder is now cached
    old = data_of(3000, 41)
    f1 = put(c, "0", "t1", old)
    f2 = put(c, "0", "t2", old)
    mark = sim.log_mark()
    run("touch", mnt.path / "t1")
    assert os.stat(mnt.path / "t1").st_size == len(old)
    assert_server_file(c, "t1", old)
    assert c.get_file(f1["id"])["sha1"] == sha1(old)
    assert not simple_uploads(sim, mark), "touch must not upload content"
    fd = os.open(mnt.path / "t2", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"tail\n")
    finally:
        os.close(fd)
    assert_server_file(c, "t2", old + b"tail\n")
    assert c.find("t2")["id"] == f2["id"], "a new version keeps the id"
    assert read_file(mnt.path / "t2") == old + b"tail\n"
    # O_EXCL on a name that exists (now known) is EEXIST.
    assert errno_of(lambda: os.open(mnt.path / "t1", os.O_WRONLY | os.O_CREAT
                                    | os.O_EXCL)) == errno.EEXIST
