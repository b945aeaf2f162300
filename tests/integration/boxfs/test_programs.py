"""Real programs against a mount (default mode), each checked on the mount,
on the bytes/SHA-1/mtime the server stored, and on errno: cp -a / cp -p,
tar -x, dd seek= (holes), O_APPEND, truncate, mv from a local disk, touch,
ln / ln -s / mkfifo / mknod, and a header rewritten after the body."""

import errno
import os
import stat
import tarfile

import pytest

from boxfs_helpers import (assert_server_file, box_time, data_of,
                           expect_errno, read_file, run, wait_until)
from test_rsync import check_copy, make_tree, uploads
from test_upload_sizes import (CM, PS, SESS, assert_parts_once,
                               committed_session, expected_ranges, final_log,
                               small_sim, upload_requests)


@pytest.fixture
def small(boxsim_factory, boxfs_factory):
    sim = small_sim(boxsim_factory)
    return sim, boxfs_factory(sim, "chunked_min=%d" % CM)


def server_mtime(client, path):
    return box_time(client.get_file(client.find(path)["id"])
                    ["content_modified_at"])


@pytest.mark.boxfs_timeout(180)
def test_cp_a_and_cp_p_keep_mtime(small, tmp_path):
    sim, m = small
    c = sim.client
    src = tmp_path / "src"
    make_tree(src, {"x/one": 10, "x/y/big": CM + 3, "top": 0})
    run("cp", "-a", src, m.path / "src")
    check_copy(c, src, m.path / "src", "src")
    # cp -p of a single file onto an existing one: a new version, same id,
    # the source's mtime (whole seconds)
    before = c.find("src/top")["id"]
    f = tmp_path / "f"
    f.write_bytes(b"cp -p")
    os.utime(f, (1234567890.75, 1234567890.75))
    run("cp", "-p", f, m.path / "src/top")
    full = assert_server_file(c, "src/top", b"cp -p")
    assert full["id"] == before
    assert box_time(full["content_modified_at"]) == 1234567890
    assert os.stat(m.path / "src/top").st_mtime == 1234567890


@pytest.mark.boxfs_timeout(180)
def test_tar_x(small, tmp_path):
    sim, m = small
    c = sim.client
    src = tmp_path / "src"
    make_tree(src, {"t/a.txt": 100, "t/d/b.bin": CM + PS, "t/d/e/c": 0})
    tarball = tmp_path / "t.tar"
    with tarfile.open(tarball, "w") as t:
        t.add(src / "t", arcname="t")
    os.mkdir(m.path / "x")
    run("tar", "-xf", tarball, "-C", m.path / "x")
    check_copy(c, src / "t", m.path / "x/t", "x/t")
    assert c.find("x/t/d/e")["type"] == "folder"


@pytest.mark.boxfs_timeout(180)
def test_dd_seek_makes_holes(small, tmp_path):
    sim, m = small
    c = sim.client
    blk = data_of(PS, 1)
    src = tmp_path / "blk"
    src.write_bytes(blk)
    # a new file: dd truncates to seek*bs, then writes past it
    run("dd", "if=%s" % src, "of=%s" % (m.path / "h"), "bs=%d" % PS,
        "seek=2", "count=1", "status=none")
    want = bytes(2 * PS) + blk
    assert_server_file(c, "h", want)
    assert read_file(m.path / "h") == want
    fid = c.find("h")["id"]
    # into the existing file, past its end, keeping the rest (conv=notrunc)
    seek = 4 * PS // 1000
    run("dd", "if=%s" % src, "of=%s" % (m.path / "h"), "bs=1000",
        "seek=%d" % seek, "count=1", "conv=notrunc", "status=none")
    want2 = want + bytes(seek * 1000 - len(want)) + blk[:1000]
    assert assert_server_file(c, "h", want2)["id"] == fid
    assert read_file(m.path / "h") == want2
    assert os.stat(m.path / "h").st_size == len(want2)


def test_o_append_onto_server_file(sim, mnt):
    c = sim.client
    old = data_of(5000, 2)
    fid = c.upload("0", "log", old)["id"]
    fd = os.open(mnt.path / "log", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"line one\n")
        os.lseek(fd, 0, os.SEEK_SET)  # O_APPEND: writes still go at the end
        os.write(fd, b"line two\n")
    finally:
        os.close(fd)
    want = old + b"line one\nline two\n"
    assert assert_server_file(c, "log", want)["id"] == fid
    assert read_file(mnt.path / "log") == want


def test_truncate_shrink_and_grow(sim, mnt):
    c = sim.client
    old = data_of(3000, 3)
    fid = c.upload("0", "t", old)["id"]
    run("truncate", "-s", "1000", mnt.path / "t")
    assert assert_server_file(c, "t", old[:1000])["id"] == fid
    assert os.stat(mnt.path / "t").st_size == 1000
    run("truncate", "-s", "4000", mnt.path / "t")
    want = old[:1000] + bytes(3000)
    assert assert_server_file(c, "t", want)["id"] == fid
    assert read_file(mnt.path / "t") == want
    # ftruncate on an open file, then close
    fd = os.open(mnt.path / "t", os.O_RDWR)
    try:
        os.ftruncate(fd, 10)
        assert os.pread(fd, 100, 0) == old[:10]
    finally:
        os.close(fd)
    assert_server_file(c, "t", old[:10])


def test_mv_from_local_disk(sim, mnt, tmp_path):
    c = sim.client
    f = tmp_path / "moved"
    data = data_of(7000, 4)
    f.write_bytes(data)
    os.utime(f, (1111111111, 1111111111))
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "sub/in").write_bytes(b"inside")
    run("mv", f, mnt.path / "moved")
    run("mv", d, mnt.path / "dir")
    assert not f.exists() and not d.exists()
    assert_server_file(c, "moved", data)
    assert server_mtime(c, "moved") == 1111111111
    assert_server_file(c, "dir/sub/in", b"inside")
    assert read_file(mnt.path / "dir/sub/in") == b"inside"


def test_touch_new_and_existing(sim, boxfs_factory):
    c = sim.client
    fid = c.upload("0", "old", b"content", mtime=1000000000)["id"]
    mnt = boxfs_factory(sim)
    run("touch", mnt.path / "new")
    assert_server_file(c, "new", b"")
    mark = sim.log_mark()
    run("touch", "-d", "@1700000000", mnt.path / "old")
    full = assert_server_file(c, "old", b"content")
    assert full["id"] == fid
    assert box_time(full["content_modified_at"]) == 1700000000
    assert os.stat(mnt.path / "old").st_mtime == 1700000000
    log = sim.log(since=mark)
    assert uploads(log) == [], "content re-uploaded by touch"
    assert [e["path"] for e in log if e["method"] == "PUT"] == \
        ["/2.0/files/%s" % fid]
    # touch without a time: now
    run("touch", mnt.path / "old")
    assert server_mtime(c, "old") > 1700000000


def test_links_and_special_files_refused(sim, mnt):
    c = sim.client
    c.upload("0", "target", b"t")
    before = c.tree()
    p = mnt.path
    expect_errno(errno.EPERM, os.symlink, "target", p / "sym")
    expect_errno(errno.EPERM, os.link, p / "target", p / "hard")
    expect_errno(errno.EPERM, os.mkfifo, p / "fifo")
    expect_errno(errno.EPERM, os.mknod, p / "dev", 0o600 | stat.S_IFCHR,
                 os.makedev(1, 3))
    r = run("ln", "-s", "target", p / "sym2", check=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    assert c.tree() == before
    assert sorted(os.listdir(p)) == ["target"]


@pytest.mark.boxfs_timeout(180)
def test_header_rewrite_after_body(small):
    """A writer that announces its size, writes the body, then seeks back
    and rewrites the header (WAV, MP4, zip): the first part was held back,
    so every part is PUT exactly once, the first one at close, and the
    server has the new header."""
    sim, m = small
    n = 4 * PS + 321
    data = bytearray(data_of(n, 6))
    data[:44] = bytes(44)       # placeholder header
    path = m.path / "a.wav"
    mark = sim.log_mark()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.posix_fallocate(fd, 0, n)
        off = 0
        while off < n:
            off += os.write(fd, data[off:off + 128 * 1024])
        want = expected_ranges(n, PS)

        def parts_up():
            return [e for e in sim.log(since=mark) if e["method"] == "PUT"
                    and e["path"].startswith(SESS + "/")
                    and e["status"] == 200]
        wait_until(lambda: len(parts_up()) >= len(want) - 1, timeout=30,
                   what="all parts but the first up")
        assert sorted(e["content_range"] for e in parts_up()) == \
            sorted(want[1:])
        data[:44] = b"RIFF" + bytes(range(40))
        os.pwrite(fd, data[:44], 0)
        close_mark = sim.log_mark()
    finally:
        os.close(fd)
    after = final_log(sim, close_mark)
    assert [e["content_range"] for e in after if e["method"] == "PUT"] == \
        [want[0]]
    simple, sessions, creates = upload_requests(final_log(sim, mark))
    assert simple == [] and len(creates) == 1
    reqs = committed_session(sessions)
    assert_parts_once(reqs, n, PS)
    assert not [e for e in reqs if e["method"] == "DELETE"]
    assert_server_file(sim.client, "a.wav", bytes(data))
    assert read_file(path) == bytes(data)


@pytest.mark.boxfs_timeout(180)
def test_cp_sparse_source(small, tmp_path):
    """cp of a sparse file seeks over the holes and sets the size at the
    end (ftruncate): the holes read back as zeros, locally and on Box."""
    sim, m = small
    f = tmp_path / "sparse"
    with open(f, "wb") as fh:
        fh.truncate(CM + PS)
        fh.seek(PS + 10)
        fh.write(b"data in the middle")
    want = read_file(f)
    for i, mode in enumerate(["always", "auto", "never"]):
        run("cp", "--sparse=" + mode, f, m.path / ("s%d" % i))
        assert_server_file(sim.client, "s%d" % i, want)
        assert read_file(m.path / ("s%d" % i)) == want


@pytest.mark.boxfs_timeout(180)
def test_rsync_delta_inplace_and_sparse(small, tmp_path):
    """rsync's delta transfer into the existing file (--inplace
    --no-whole-file: reads the old file through the mount, writes only
    the changed blocks) and --sparse."""
    sim, m = small
    c = sim.client
    src = tmp_path / "src"
    make_tree(src, {"f.bin": CM + PS + 7})
    dst = m.path / "d"
    run("rsync", "-a", "-S", str(src) + "/", str(dst) + "/")
    ids = check_copy(c, src, dst, "d")
    big = bytearray(read_file(src / "f.bin"))
    big[PS + 100:PS + 200] = b"D" * 100
    big += b"tail"
    (src / "f.bin").write_bytes(bytes(big))
    run("rsync", "-a", "--inplace", "--no-whole-file", str(src) + "/",
        str(dst) + "/")
    assert check_copy(c, src, dst, "d") == ids


def test_rsync_and_cp_a_of_a_tree_with_a_symlink(sim, mnt, tmp_path):
    """The symlink is refused (EPERM, reported by the program), the rest
    of the tree is copied."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"file")
    os.symlink("f", src / "link")
    r = run("rsync", "-a", str(src) + "/", str(mnt.path / "r") + "/",
            check=False)
    assert r.returncode == 23 and "Operation not permitted" in r.stderr, r
    r = run("cp", "-a", src, mnt.path / "c", check=False)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r
    for d in ("r", "c"):
        assert_server_file(sim.client, d + "/f", b"file")
        assert sorted(os.listdir(mnt.path / d)) == ["f"]
    run("rsync", "-a", "--no-links", str(src) + "/", str(mnt.path / "r") + "/")


@pytest.mark.boxfs_timeout(180)
def test_wave_and_zip_writers(small, tmp_path):
    """Python's wave and zipfile modules patch their headers after the
    body. wave with a declared size streams, and its header patch at close
    re-sends nothing; zipfile (size unknown) goes at close. Both read back
    intact from the mount and from the server's bytes."""
    import io
    import wave
    import zipfile
    sim, m = small
    frames = data_of(CM + PS, 8)
    path = m.path / "t.wav"
    mark = sim.log_mark()
    with open(path, "wb") as f:
        os.setxattr(path, "user.boxfs.size", str(44 + len(frames)).encode())
        w = wave.open(f, "wb")
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        # the header is written with the first chunk's frame count and
        # patched by close()
        w.writeframesraw(frames[:PS])
        w.writeframesraw(frames[PS:])
        w.close()
    simple, sessions, creates = upload_requests(final_log(sim, mark))
    assert simple == [] and len(creates) == 1, creates
    assert_parts_once(committed_session(sessions), 44 + len(frames), PS)
    srv = sim.client.download(sim.client.find("t.wav")["id"])
    assert srv == read_file(path)
    with wave.open(io.BytesIO(srv)) as r:
        assert r.getnframes() == len(frames) // 4
        assert r.readframes(len(frames)) == frames

    with zipfile.ZipFile(m.path / "a.zip", "w") as z:
        z.writestr("one.txt", b"one" * 1000)
        with z.open("big.bin", "w", force_zip64=True) as e:
            e.write(frames[:PS])
    srv = sim.client.download(sim.client.find("a.zip")["id"])
    assert srv == read_file(m.path / "a.zip")
    with zipfile.ZipFile(io.BytesIO(srv)) as z:
        assert z.testzip() is None
        assert z.read("one.txt") == b"one" * 1000
        assert z.read("big.bin") == frames[:PS]


def test_dd_flags_and_tee_a(sim, mnt, tmp_path):
    """dd oflag=direct / conv=fsync / oflag=append, tee -a: bytes on Box."""
    c = sim.client
    blk = data_of(64 * 1024, 9)
    src = tmp_path / "blk"
    src.write_bytes(blk)
    out = mnt.path / "dd"
    run("dd", "if=%s" % src, "of=%s" % out, "bs=4096", "oflag=direct",
        "status=none")
    assert_server_file(c, "dd", blk)
    run("dd", "if=%s" % src, "of=%s" % out, "bs=4096", "conv=fsync",
        "count=2", "status=none")
    assert_server_file(c, "dd", blk[:8192])
    run("dd", "if=%s" % src, "of=%s" % out, "bs=4096", "count=1",
        "oflag=append", "conv=notrunc", "status=none")
    assert_server_file(c, "dd", blk[:8192] + blk[:4096])
    run("tee", "-a", out, input=b"teed\n", text=False)
    want = blk[:8192] + blk[:4096] + b"teed\n"
    assert_server_file(c, "dd", want)
    assert read_file(out) == want
