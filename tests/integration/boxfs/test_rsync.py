"""rsync run for real against a mount (default mode): the tree, the bytes,
SHA-1s and mtimes the server stored, a second run that transfers nothing,
and the options that change how rsync writes (--inplace, --partial,
--append, --append-verify, --preallocate, --delete).

Small boxsim numbers (1 MiB parts, 2 MiB chunked minimum) so that files
around the chunked minimum stay small."""

import os
import re
import signal
import subprocess

import pytest

from boxfs_helpers import (assert_server_file, box_time, data_of, read_file,
                           run, wait_until)
from test_upload_sizes import CM, PS, final_log, small_sim, upload_requests

# name -> size; the mtimes have fractions of a second on purpose (Box keeps
# whole seconds, rsync compares whole seconds)
TREE = {
    "empty": 0,
    "small.txt": 1000,
    "a/below": CM - 1,
    "a/at": CM,
    "a/b/above": CM + 1,
    "a/b/c/deep.txt": 10,
    "a/b/c/empty2": 0,
}


def make_tree(root, files=TREE, seed=0):
    for i, (name, n) in enumerate(sorted(files.items())):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data_of(n, seed + i))
        t = 1400000000 + 1000 * i + 0.25
        os.utime(p, (t, t))
    os.makedirs(root / "a/emptydir", exist_ok=True)


def local_files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = p
    return out


def check_copy(client, src, dst, prefix):
    """Every file of src is on the server under prefix (bytes, SHA-1,
    whole-second mtime) and on the mount; no leftovers (rsync's temp
    files) on the server."""
    files = local_files(src)
    for rel, p in files.items():
        data = read_file(p)
        st = os.stat(p)
        full = assert_server_file(client, prefix + "/" + rel, data)
        assert box_time(full["content_modified_at"]) == int(st.st_mtime), rel
        mst = os.stat(dst / rel)
        assert mst.st_size == len(data), rel
        assert mst.st_mtime == int(st.st_mtime), rel
        assert read_file(dst / rel) == data, rel
    top = client.find(prefix)
    server = {k for k, v in client.tree(top["id"]).items() if v is not None}
    assert server == set(files), server ^ set(files)
    return {rel: client.find(prefix + "/" + rel)["id"] for rel in files}


def uploads(log):
    simple, sessions, creates = upload_requests(log)
    return simple + creates + [e for reqs in sessions.values() for e in reqs]


def transferred(out):
    m = re.search(r"Number of regular files transferred: (\d+)", out)
    assert m, out
    return int(m.group(1))


@pytest.fixture
def small(boxsim_factory, boxfs_factory):
    sim = small_sim(boxsim_factory)
    return sim, boxfs_factory(sim, "chunked_min=%d" % CM)


@pytest.mark.boxfs_timeout(180)
def test_rsync_tree_then_nothing_then_changes(small, tmp_path):
    sim, m = small
    c = sim.client
    src = tmp_path / "src"
    make_tree(src)
    dst = m.path / "dst"
    r = run("rsync", "-a", "--stats", str(src) + "/", str(dst) + "/")
    assert transferred(r.stdout) == len(TREE)
    ids = check_copy(c, src, dst, "dst")
    assert os.path.isdir(dst / "a/emptydir")
    assert c.find("dst/a/emptydir")["type"] == "folder"

    # A second run finds every file up to date: nothing is uploaded.
    mark = sim.log_mark()
    r = run("rsync", "-a", "--stats", str(src) + "/", str(dst) + "/")
    assert transferred(r.stdout) == 0, r.stdout
    assert uploads(sim.log(since=mark)) == []

    # Changed files are replaced (temp file + rename onto the old name):
    # new bytes and mtimes, the others untouched.
    (src / "small.txt").write_bytes(b"changed")
    (src / "a/b/above").write_bytes(data_of(CM + PS, 99))
    os.utime(src / "a/b/above", (1500000000, 1500000000))
    mark = sim.log_mark()
    r = run("rsync", "-a", "--stats", str(src) + "/", str(dst) + "/")
    assert transferred(r.stdout) == 2, r.stdout
    ids2 = check_copy(c, src, dst, "dst")
    # rsync renames its temp file over the target: the file that carries
    # the new content is the temp file (its own Box id); unchanged files
    # keep theirs (docs/SEMANTICS.md, rename onto an existing name)
    assert {k for k in ids if ids[k] != ids2[k]} == {"small.txt",
                                                     "a/b/above"}
    log = final_log(sim, mark)
    assert not [e for e in log if e["method"] == "DELETE" and
                "/folders/" in e["path"]]

    # --delete removes what the source no longer has, files and folders.
    os.remove(src / "a/at")
    run("rm", "-r", src / "a/b/c")
    run("rsync", "-a", "--delete", str(src) + "/", str(dst) + "/")
    check_copy(c, src, dst, "dst")
    assert c.find("dst/a/at") is None and c.find("dst/a/b/c") is None
    assert not os.path.exists(dst / "a/b/c")


@pytest.mark.parametrize("opt", ["--inplace", "--partial", "--preallocate"])
@pytest.mark.boxfs_timeout(180)
def test_rsync_options_replace(small, tmp_path, opt):
    sim, m = small
    c = sim.client
    src = tmp_path / "src"
    files = {"f.bin": CM + PS + 7, "g.txt": 500, "h.txt": 900}
    make_tree(src, files)
    dst = m.path / "d"
    run("rsync", "-a", opt, str(src) + "/", str(dst) + "/")
    ids = check_copy(c, src, dst, "d")
    # rewrite the middle of the big file, grow one small file, shrink one
    big = bytearray(read_file(src / "f.bin"))
    big[PS:PS + 5000] = b"M" * 5000
    (src / "f.bin").write_bytes(bytes(big))
    (src / "g.txt").write_bytes(data_of(800, 3))
    (src / "h.txt").write_bytes(read_file(src / "h.txt")[:300])
    mark = sim.log_mark()
    run("rsync", "-a", opt, str(src) + "/", str(dst) + "/")
    ids2 = check_copy(c, src, dst, "d")
    if opt == "--inplace":
        # written into the existing files: new versions, same ids
        assert ids2 == ids
    log = final_log(sim, mark)
    if opt == "--preallocate":
        # fallocate announces the size: the big file streams in one
        # session, every part once
        simple, sessions, creates = upload_requests(log)
        assert len(creates) == 1, creates
        assert len(simple) == 2, simple   # g.txt, h.txt


@pytest.mark.parametrize("opt", ["--append", "--append-verify"])
@pytest.mark.boxfs_timeout(180)
def test_rsync_append(small, tmp_path, opt):
    sim, m = small
    c = sim.client
    src = tmp_path / "src"
    make_tree(src, {"log.txt": PS + 100, "small": 10})
    dst = m.path / "d"
    run("rsync", "-a", opt, str(src) + "/", str(dst) + "/")
    ids = check_copy(c, src, dst, "d")
    with open(src / "log.txt", "ab") as f:
        f.write(data_of(CM, 5))
    with open(src / "small", "ab") as f:
        f.write(b"+more")
    os.utime(src / "small", (1600000000, 1600000000))
    os.utime(src / "log.txt", (1600000000, 1600000000))
    run("rsync", "-a", opt, str(src) + "/", str(dst) + "/")
    # appended in place: new versions of the same files
    assert check_copy(c, src, dst, "d") == ids


def group_alive(pgid):
    """Is any process of process group pgid still running?"""
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


@pytest.mark.boxfs_timeout(180)
def test_rsync_partial_interrupted_then_resumed(small, tmp_path):
    """rsync --partial interrupted mid-file keeps what it got under the
    final name; the next run completes it."""
    sim, m = small
    src = tmp_path / "src"
    make_tree(src, {"f.bin": CM + PS})
    dst = m.path / "d"
    os.mkdir(dst)
    p = subprocess.Popen(["rsync", "-a", "--partial", "--bwlimit=300",
                          str(src) + "/", str(dst) + "/"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        wait_until(lambda: any(n.startswith(".f.bin.") and
                               os.stat(dst / n).st_size > 0
                               for n in os.listdir(dst)),
                   timeout=30, what="rsync's temp file")
        # as ^C does: to the whole group (rsync's receiver is a child)
        os.killpg(p.pid, signal.SIGINT)
        assert p.wait(timeout=30) == 20
        wait_until(lambda: not group_alive(p.pid), timeout=30,
                   what="rsync's receiver to finish")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    part = read_file(dst / "f.bin")
    full = read_file(src / "f.bin")
    assert 0 < len(part) < len(full) and full.startswith(part)
    assert_server_file(sim.client, "d/f.bin", part)
    assert sorted(os.listdir(dst)) == ["a", "f.bin"]
    run("rsync", "-a", "--partial", str(src) + "/", str(dst) + "/")
    check_copy(sim.client, src, dst, "d")
