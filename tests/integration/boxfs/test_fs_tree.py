"""The tree: listings and attributes of what is on the server, mkdir/rmdir/
unlink/rename and the errno of their failures, Box's name rules and its
case-insensitive uniqueness, big folders, retried server errors.

Each test checks the mount, what the server stored (BoxClient) and errno."""

import errno
import os
import stat

import pytest

from boxfs_helpers import (assert_server_file, box_time, data_of, errno_of,
                           expect_errno, log_requests, names, put, read_file,
                           run, write_file)

T1 = 1577934245          # 2020-01-02T03:04:05Z
T2 = 1262401445          # 2010-01-02T03:04:05Z


@pytest.fixture
def tree(sim):
    """A small tree put on the server through the API before mounting:
    a.txt, empty, docs/, docs/b.bin, docs/deep/"""
    c = sim.client
    docs = c.create_folder("0", "docs")
    deep = c.create_folder(docs["id"], "deep")
    files = {
        "a.txt": (put(c, "0", "a.txt", b"hello box\n", mtime=T1),
                  b"hello box\n"),
        "empty": (put(c, "0", "empty", b"", mtime=T2), b""),
        "docs/b.bin": (put(c, docs["id"], "b.bin", data_of(70001, 1),
                           mtime=T2), data_of(70001, 1)),
    }
    return {"docs": docs, "deep": deep, "files": files}


def test_stat_matches_server(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    c = sim.client
    for rel, (f, data) in tree["files"].items():
        st = os.stat(m.path / rel)
        srv = c.get_file(f["id"])
        assert stat.S_ISREG(st.st_mode), rel
        assert st.st_size == len(data) == int(srv["size"]), rel
        assert st.st_mtime == box_time(srv["content_modified_at"]), rel
        assert st.st_nlink >= 1
        assert st.st_blocks * 512 >= st.st_size, "du would be wrong"
    assert os.stat(m.path / "a.txt").st_mtime == T1
    assert os.stat(m.path / "docs/b.bin").st_mtime == T2
    for d in ("docs", "docs/deep"):
        st = os.stat(m.path / d)
        assert stat.S_ISDIR(st.st_mode), d
    assert stat.S_ISDIR(os.stat(m.path).st_mode)
    expect_errno(errno.ENOENT, os.stat, m.path / "nope")
    expect_errno(errno.ENOENT, os.stat, m.path / "docs/nope/x")
    expect_errno(errno.ENOTDIR, os.stat, m.path / "a.txt/x")


def test_ls_l_matches_server(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    assert sorted(os.listdir(m.path)) == names(sim.client, "0") == \
        ["a.txt", "docs", "empty"]
    assert sorted(os.listdir(m.path / "docs")) == ["b.bin", "deep"]
    assert os.listdir(m.path / "docs/deep") == []
    out = run("ls", "-l", "--time-style=+%s", m.path, env={"LC_ALL": "C"})
    rows = {}
    for line in out.stdout.splitlines()[1:]:
        f = line.split()
        rows[f[-1]] = f
    assert set(rows) == {"a.txt", "docs", "empty"}
    assert rows["a.txt"][0].startswith("-")
    assert rows["docs"][0].startswith("d")
    assert int(rows["a.txt"][4]) == 10 and int(rows["a.txt"][5]) == T1
    assert int(rows["empty"][4]) == 0 and int(rows["empty"][5]) == T2
    # readdir's types agree with stat (readdirplus or not).
    with os.scandir(m.path) as it:
        kinds = {e.name: e.is_dir() for e in it}
    assert kinds == {"a.txt": False, "docs": True, "empty": False}


def test_mkdir_and_rmdir(sim, mnt):
    c = sim.client
    os.mkdir(mnt.path / "new")
    os.mkdir(mnt.path / "new/sub")
    new = c.find("new")
    assert new and new["type"] == "folder"
    assert c.find("new/sub")["type"] == "folder"
    assert stat.S_ISDIR(os.stat(mnt.path / "new/sub").st_mode)
    assert os.listdir(mnt.path / "new") == ["sub"]
    os.rmdir(mnt.path / "new/sub")
    assert c.find("new/sub") is None
    assert os.listdir(mnt.path / "new") == []
    os.rmdir(mnt.path / "new")
    assert c.find("new") is None
    assert os.listdir(mnt.path) == []
    run("mkdir", "-p", mnt.path / "p/q/r")
    assert c.find("p/q/r")["type"] == "folder"


def test_mkdir_errors(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    c = sim.client
    before = c.tree()
    expect_errno(errno.EEXIST, os.mkdir, m.path / "docs")
    expect_errno(errno.EEXIST, os.mkdir, m.path / "a.txt")
    expect_errno(errno.ENOENT, os.mkdir, m.path / "missing/x")
    expect_errno(errno.ENOTDIR, os.mkdir, m.path / "a.txt/x")
    expect_errno(errno.ENAMETOOLONG, os.mkdir, m.path / ("n" * 256))
    expect_errno(errno.EINVAL, os.mkdir, m.path / "back\\slash")
    expect_errno(errno.EINVAL, os.mkdir, m.path / "trailing ")
    assert c.tree() == before, "a failed mkdir changed the server"
    # The longest legal name works.
    os.mkdir(m.path / ("n" * 255))
    assert c.find("n" * 255)["type"] == "folder"


def test_rmdir_errors(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    c = sim.client
    before = c.tree()
    expect_errno(errno.ENOTEMPTY, os.rmdir, m.path / "docs")
    expect_errno(errno.ENOENT, os.rmdir, m.path / "missing")
    expect_errno(errno.ENOTDIR, os.rmdir, m.path / "a.txt")
    assert c.tree() == before
    assert sorted(os.listdir(m.path / "docs")) == ["b.bin", "deep"]
    r = run("rmdir", m.path / "docs", check=False)
    assert r.returncode != 0 and "not empty" in r.stderr.lower(), r.stderr
    # rm -r empties and removes it, on the server too.
    run("rm", "-r", m.path / "docs")
    assert c.find("docs") is None
    assert sorted(os.listdir(m.path)) == ["a.txt", "empty"]


def test_unlink(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    c = sim.client
    os.unlink(m.path / "a.txt")
    assert c.find("a.txt") is None
    expect_errno(errno.ENOENT, os.stat, m.path / "a.txt")
    run("rm", m.path / "docs/b.bin")
    assert c.find("docs/b.bin") is None
    assert os.listdir(m.path / "docs") == ["deep"]
    expect_errno(errno.ENOENT, os.unlink, m.path / "a.txt")
    expect_errno(errno.EISDIR, os.unlink, m.path / "docs")
    assert c.find("docs")["type"] == "folder"
    assert sorted(os.listdir(m.path)) == ["docs", "empty"]


def test_rename_file_same_folder_and_across(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    c = sim.client
    fid = tree["files"]["a.txt"][0]["id"]
    os.rename(m.path / "a.txt", m.path / "b.txt")
    assert c.find("a.txt") is None
    moved = c.find("b.txt")
    assert moved["id"] == fid, "a rename must keep the Box id"
    assert read_file(m.path / "b.txt") == b"hello box\n"
    expect_errno(errno.ENOENT, os.stat, m.path / "a.txt")
    run("mv", m.path / "b.txt", m.path / "docs/deep/c.txt")
    assert c.find("b.txt") is None
    assert c.find("docs/deep/c.txt")["id"] == fid
    assert read_file(m.path / "docs/deep/c.txt") == b"hello box\n"
    assert os.stat(m.path / "docs/deep/c.txt").st_mtime == T1, \
        "a rename must not touch the content time"
    assert_server_file(c, "docs/deep/c.txt", b"hello box\n")


def test_rename_folder_with_contents(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    c = sim.client
    did = tree["docs"]["id"]
    os.rename(m.path / "docs", m.path / "papers")
    assert c.find("docs") is None and c.find("papers")["id"] == did
    assert read_file(m.path / "papers/b.bin") == data_of(70001, 1)
    os.mkdir(m.path / "archive")
    run("mv", m.path / "papers", m.path / "archive/")
    assert c.find("archive/papers")["id"] == did
    assert_server_file(c, "archive/papers/b.bin", data_of(70001, 1))
    assert sorted(os.listdir(m.path / "archive/papers")) == ["b.bin", "deep"]
    assert sorted(os.listdir(m.path)) == ["a.txt", "archive", "empty"]


def test_rename_onto_existing_file(tree, sim, boxfs_factory):
    """rsync's pattern: write a temp file, rename it over the target."""
    m = boxfs_factory(sim)
    c = sim.client
    new = data_of(3000, 7)
    write_file(m.path / ".a.txt.tmp", new)
    os.rename(m.path / ".a.txt.tmp", m.path / "a.txt")
    assert read_file(m.path / "a.txt") == new
    assert os.stat(m.path / "a.txt").st_size == len(new)
    assert c.find(".a.txt.tmp") is None
    assert names(c, "0") == ["a.txt", "docs", "empty"]
    assert_server_file(c, "a.txt", new)
    # And with mv, across folders, over a file with other content.
    run("mv", "-f", m.path / "empty", m.path / "docs/b.bin")
    assert read_file(m.path / "docs/b.bin") == b""
    assert names(c, tree["docs"]["id"]) == ["b.bin", "deep"]
    assert_server_file(c, "docs/b.bin", b"")
    assert c.find("empty") is None


def test_rename_dir_onto_empty_dir_replaces_it(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    c = sim.client
    os.mkdir(m.path / "src")
    write_file(m.path / "src/f", b"f")
    os.rename(m.path / "src", m.path / "docs/deep")
    assert read_file(m.path / "docs/deep/f") == b"f"
    assert c.find("src") is None
    assert_server_file(c, "docs/deep/f", b"f")
    assert names(c, tree["docs"]["id"]) == ["b.bin", "deep"]


def test_rename_errors(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    c = sim.client
    os.mkdir(m.path / "full")
    write_file(m.path / "full/x", b"x")
    before = c.tree()
    p = m.path
    expect_errno(errno.ENOENT, os.rename, p / "missing", p / "x")
    expect_errno(errno.ENOENT, os.rename, p / "a.txt", p / "missing/x")
    expect_errno(errno.ENOTEMPTY, os.rename, p / "docs", p / "full")
    expect_errno(errno.EISDIR, os.rename, p / "a.txt", p / "docs")
    expect_errno(errno.ENOTDIR, os.rename, p / "docs", p / "a.txt")
    expect_errno(errno.EINVAL, os.rename, p / "docs", p / "docs/deep/in")
    expect_errno(errno.ENAMETOOLONG, os.rename, p / "a.txt", p / ("n" * 256))
    expect_errno(errno.EINVAL, os.rename, p / "a.txt", p / "trailing ")
    expect_errno(errno.EINVAL, os.rename, p / "a.txt", p / "back\\slash")
    assert c.tree() == before, "a failed rename changed the server"
    assert read_file(p / "a.txt") == b"hello box\n"
    assert read_file(p / "full/x") == b"x"
    # Renaming onto itself is a no-op that succeeds.
    os.rename(p / "a.txt", p / "a.txt")
    assert c.tree() == before


def test_case_insensitive_clash(sim, boxfs_factory):
    c = sim.client
    put(c, "0", "Report.TXT", b"original")
    c.create_folder("0", "Photos")
    m = boxfs_factory(sim)
    before = c.tree()
    for name in ("report.txt", "REPORT.TXT", "photos"):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        got = errno_of(write_file, m.path / name, b"clash", flags)
        assert got == errno.EEXIST, (name, got)
    expect_errno(errno.EEXIST, os.mkdir, m.path / "report.txt")
    expect_errno(errno.EEXIST, os.mkdir, m.path / "PHOTOS")
    assert c.tree() == before, "a clash changed the server"
    assert_server_file(c, "Report.TXT", b"original")
    assert sorted(os.listdir(m.path)) == ["Photos", "Report.TXT"]
    # Renaming only the case of a name is allowed and reaches the server.
    os.rename(m.path / "Photos", m.path / "photos")
    assert names(c, "0") == ["Report.TXT", "photos"]
    assert sorted(os.listdir(m.path)) == ["Report.TXT", "photos"]


NAMES = ["with space.txt", "  leading spaces", "Ünïcödé ✓.txt", "日本語のファイル",
         "emoji 😀 file", "semi;colon&amp'quote\"", "x" * 200 + " é"]


def test_names_with_spaces_and_non_ascii(sim, boxfs_factory):
    c = sim.client
    d = c.create_folder("0", "from api ü")
    for n in NAMES:
        put(c, d["id"], n, n.encode())
    m = boxfs_factory(sim)
    assert sorted(os.listdir(m.path)) == ["from api ü"]
    assert sorted(os.listdir(m.path / "from api ü")) == sorted(NAMES)
    for n in NAMES:
        assert read_file(m.path / "from api ü" / n) == n.encode()
    # Created through the mount: the server gets the exact names.
    os.mkdir(m.path / "dir ✓ ß")
    for n in NAMES:
        write_file(m.path / "dir ✓ ß" / n, n.encode() * 3)
    f = c.find("dir ✓ ß")
    assert f and f["type"] == "folder"
    assert names(c, f["id"]) == sorted(NAMES)
    for n in NAMES:
        assert_server_file(c, "dir ✓ ß/" + n, n.encode() * 3)
    os.rename(m.path / "dir ✓ ß" / NAMES[2], m.path / "dir ✓ ß" / "Ærø ø.txt")
    assert c.find("dir ✓ ß/Ærø ø.txt") is not None
    assert c.find("dir ✓ ß/" + NAMES[2]) is None


@pytest.mark.boxfs_timeout(240)
def test_folder_with_more_than_1000_entries(sim, boxfs_factory):
    c = sim.client
    big = c.create_folder("0", "big")
    want = []
    for i in range(1100):
        n = "f%04d" % i
        if i % 100 == 0:
            c.create_folder(big["id"], n)
        else:
            put(c, big["id"], n, b"%d" % i)
        want.append(n)
    m = boxfs_factory(sim)
    mark = sim.log_mark()
    got = os.listdir(m.path / "big")
    assert sorted(got) == want
    assert len(got) == len(set(got)) == 1100
    lists = [e for e in log_requests(sim, mark, "GET")
             if e["path"] == "/2.0/folders/%s/items" % big["id"]]
    assert len(lists) >= 2, "1100 entries need at least two pages: %r" % lists
    # Entries on the later pages are real.
    assert read_file(m.path / "big/f1099") == b"1099"
    assert stat.S_ISDIR(os.stat(m.path / "big/f1000").st_mode)
    out = run("ls", "-l", m.path / "big").stdout.splitlines()
    assert len(out) == 1101  # "total N" + one line each
    # rm -r unlinks while it reads the folder: readdir offsets must hold.
    run("rm", "-r", m.path / "big", timeout=300)
    assert c.find("big") is None
    assert os.listdir(m.path) == []


def test_server_500_on_listing_is_retried(tree, sim, boxfs_factory):
    did = tree["docs"]["id"]
    path = "/2.0/folders/%s/items" % did
    sim.add_fault("kind=status,status=500,method=GET,path=%s" % path)
    m = boxfs_factory(sim)
    assert sorted(os.listdir(m.path / "docs")) == ["b.bin", "deep"]
    got = [e["status"] for e in log_requests(sim, 0, "GET")
           if e["path"] == path]
    assert got[:2] == [500, 200], got


def test_server_429_on_upload_is_retried(sim, mnt):
    sim.add_fault("kind=status,status=429,retry_after=1,method=POST,"
                  "path=/api/2.0/files/content")
    data = data_of(5000, 3)
    mark = sim.log_mark()
    write_file(mnt.path / "rate.bin", data)
    ups = log_requests(sim, mark, "POST", "/api/2.0/files/content")
    assert [e["status"] for e in ups] == [429, 201], ups
    assert ups[1]["t"] - ups[0]["t"] >= 0.9, "Retry-After: 1 not honoured"
    assert_server_file(sim.client, "rate.bin", data)
    assert read_file(mnt.path / "rate.bin") == data


def test_server_503_on_mkdir_and_rename_is_retried(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    sim.add_fault("kind=status,status=503,retry_after=1,method=POST,"
                  "path=/2.0/folders")
    sim.add_fault("kind=status,status=502,method=PUT,path=/2.0/files/*")
    mark = sim.log_mark()
    os.mkdir(m.path / "made")
    os.rename(m.path / "a.txt", m.path / "made/a.txt")
    assert sim.client.find("made/a.txt")["id"] == \
        tree["files"]["a.txt"][0]["id"]
    st = [(e["method"], e["status"]) for e in log_requests(sim, mark)
          if e["method"] in ("POST", "PUT")]
    assert st == [("POST", 503), ("POST", 201), ("PUT", 502), ("PUT", 200)], st


def test_changes_through_mount_visible_at_once(tree, sim, boxfs_factory):
    """Our own changes update the caches immediately (no TTL wait)."""
    m = boxfs_factory(sim, "dir_ttl=3600", "attr_ttl=3600")
    assert sorted(os.listdir(m.path)) == ["a.txt", "docs", "empty"]
    os.mkdir(m.path / "d2")
    write_file(m.path / "n.txt", b"n")
    os.unlink(m.path / "empty")
    os.rename(m.path / "a.txt", m.path / "docs/a.txt")
    assert sorted(os.listdir(m.path)) == ["d2", "docs", "n.txt"]
    assert sorted(os.listdir(m.path / "docs")) == ["a.txt", "b.bin", "deep"]
    assert os.stat(m.path / "n.txt").st_size == 1


def test_links_and_special_files_refused(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    before = sim.client.tree()
    expect_errno(errno.EPERM, os.symlink, "a.txt", m.path / "sym")
    expect_errno(errno.EPERM, os.link, m.path / "a.txt", m.path / "hard")
    expect_errno(errno.EPERM, os.mkfifo, m.path / "fifo")
    assert sim.client.tree() == before
    assert sorted(os.listdir(m.path)) == ["a.txt", "docs", "empty"]


def _renameat2(old, new, flags):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    r = libc.renameat2(at_fdcwd, bytes(old), at_fdcwd, bytes(new),
                       ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def test_rename_noreplace_and_exchange(tree, sim, boxfs_factory):
    noreplace, exchange = 1, 2
    m = boxfs_factory(sim)
    c = sim.client
    p = m.path
    before = c.tree()
    expect_errno(errno.EEXIST, _renameat2, p / "a.txt", p / "empty",
                 noreplace)
    expect_errno(errno.EINVAL, _renameat2, p / "a.txt", p / "empty",
                 exchange)
    assert c.tree() == before
    _renameat2(p / "a.txt", p / "fresh.txt", noreplace)
    assert c.find("fresh.txt")["id"] == tree["files"]["a.txt"][0]["id"]
    assert read_file(p / "fresh.txt") == b"hello box\n"


def test_create_exclusive_on_existing_name(tree, sim, boxfs_factory):
    m = boxfs_factory(sim)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    assert errno_of(write_file, m.path / "a.txt", b"x", flags) == errno.EEXIST
    assert errno_of(write_file, m.path / "docs", b"x", flags) == errno.EEXIST
    assert_server_file(sim.client, "a.txt", b"hello box\n")
