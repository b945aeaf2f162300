"""Write-back mode (-o writeback=SECONDS): close() returns once the data is
durable in the spool + journal, the commit follows after the idle time;
utimens/rename of a pending file fold into its upload; unlink drops it;
failures are retried and shown in user.boxfs.state; kill -9 and a restart
with the same cache_dir resume the uploads sending only missing parts;
unmount uploads what is pending (or, with unmount=refuse, fails with EBUSY
until it is done)."""

import os
import stat
import subprocess
import time

import pytest

from boxfs_helpers import (assert_server_file, box_time, data_of, read_file,
                           wait_until, write_file)
from test_upload_faults import write_declared
from test_upload_sizes import (CM, PS, SESS, expected_ranges, small_sim,
                               upload_requests)

SIMPLE = "/api/2.0/files/content"
STATE = "user.boxfs.state"


def state(path):
    try:
        return os.getxattr(path, STATE).decode()
    except FileNotFoundError:    # not created yet
        return ""


def uploads(log):
    """Requests that create content: simple uploads and session commits."""
    return [e for e in log if e["method"] == "POST" and
            (e["path"].endswith("/content") or e["path"].endswith("/commit"))]


def on_server(sim, name, data):
    f = sim.client.find(name)
    return f is not None and int(f.get("size", -1)) == len(data) and \
        sim.client.get_file(f["id"])["sha1"] == __import__(
            "hashlib").sha1(data).hexdigest()


def test_close_returns_before_commit(sim, boxfs_factory):
    m = boxfs_factory(sim, "writeback=1.5")
    data = data_of(5000, 1)
    mark = sim.log_mark()
    write_file(m.path / "a", data)
    closed = time.time()
    # pending: visible with its local size, read from the spool, not sent
    assert state(m.path / "a").startswith("pending (commit in"), \
        state(m.path / "a")
    assert os.stat(m.path / "a").st_size == len(data)
    assert "a" in os.listdir(m.path)
    assert read_file(m.path / "a") == data
    os.utime(m.path / "a", (1500000000, 1500000000))   # folds in
    assert uploads(sim.log(since=mark)) == []
    wait_until(lambda: sim.client.find("a"), 15, "the commit")
    full = assert_server_file(sim.client, "a", data)
    assert box_time(full["content_modified_at"]) == 1500000000
    log = sim.log(since=mark)
    up = uploads(log)
    assert [e["status"] for e in up] == [201], up
    assert up[0]["t"] >= closed + 1.0, "committed before the idle time"
    # no separate attribute update: the time went with the upload
    assert not [e for e in log if e["method"] == "PUT"], log
    wait_until(lambda: state(m.path / "a") == "committed", 5, "state")


def test_fsync_commits_now(sim, boxfs_factory):
    m = boxfs_factory(sim, "writeback=60")
    data = data_of(3000, 2)
    fd = os.open(m.path / "s", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        assert_server_file(sim.client, "s", data)   # no waiting needed
    finally:
        os.close(fd)


def test_rsync_like_temp_utimes_rename_uploads_once(sim, boxfs_factory):
    m = boxfs_factory(sim, "writeback=1")
    old = data_of(100, 3)
    keep = sim.client.upload("0", "old.txt", old)["id"]
    sim.log()                   # settled: our own upload is before the mark
    mark = sim.log_mark()
    data, newer = data_of(7000, 4), data_of(900, 5)
    write_file(m.path / ".new.txt.Ab12", data)
    os.utime(m.path / ".new.txt.Ab12", (1400000000, 1400000000))
    os.chmod(m.path / ".new.txt.Ab12", 0o640)
    os.rename(m.path / ".new.txt.Ab12", m.path / "new.txt")
    # onto an existing Box file: becomes its next version (same id)
    write_file(m.path / ".old.txt.Zz99", newer)
    os.rename(m.path / ".old.txt.Zz99", m.path / "old.txt")
    assert sorted(os.listdir(m.path)) == ["new.txt", "old.txt"]
    wait_until(lambda: on_server(sim, "new.txt", data) and
               on_server(sim, "old.txt", newer), 15, "both commits")
    full = assert_server_file(sim.client, "new.txt", data)
    assert box_time(full["content_modified_at"]) == 1400000000
    assert assert_server_file(sim.client, "old.txt", newer)["id"] == keep
    log = sim.log(since=mark)
    up = uploads(log)
    assert sorted(e["path"] for e in up) == sorted(
        [SIMPLE, "/api/2.0/files/%s/content" % keep]), log
    # no rename, no delete, no temp name ever on the server
    assert not [e for e in log if e["method"] in ("PUT", "DELETE")], log
    assert sorted(e["name"] for e in sim.client.list("0")) == \
        ["new.txt", "old.txt"]


def test_unlink_of_pending_file_sends_nothing(sim, boxfs_factory, tmp_path):
    m = boxfs_factory(sim, "writeback=1")
    mark = sim.log_mark()
    write_file(m.path / "gone", data_of(4000, 6))
    os.unlink(m.path / "gone")
    write_file(m.path / "marker", b"m")   # due after "gone" would have been
    wait_until(lambda: sim.client.find("marker"), 15, "the marker commit")
    assert sim.client.find("gone") is None
    assert len(uploads(sim.log(since=mark))) == 1
    assert not os.path.exists(m.path / "gone")
    journal = tmp_path / "cache1" / "journal"
    wait_until(lambda: not [p for p in os.listdir(journal)], 5,
               "an empty journal")


def test_failed_upload_retried_and_shown(sim, boxfs_factory):
    m = boxfs_factory(sim, "writeback=0.5", "retries=0")
    data = data_of(2500, 7)
    sim.add_fault("kind=status,status=500,count=0,method=POST,path=" + SIMPLE)
    write_file(m.path / "r", data)          # close succeeds: data is safe
    wait_until(lambda: state(m.path / "r").startswith("failed, retry in"),
               15, "the failed state")
    assert "server error" in state(m.path / "r"), state(m.path / "r")
    assert sim.client.find("r") is None
    sim.clear_faults()
    wait_until(lambda: sim.client.find("r"), 20, "the retried commit")
    assert_server_file(sim.client, "r", data)


def test_journal_and_spool_modes(sim, boxfs_factory, tmp_path):
    m = boxfs_factory(sim, "writeback=60")
    write_file(m.path / "p", data_of(1000, 8))
    cache = tmp_path / "cache1"
    journal = cache / "journal"
    assert stat.S_IMODE(os.stat(journal).st_mode) == 0o700
    entries = os.listdir(journal)
    assert len(entries) == 1 and entries[0].endswith(".json"), entries
    assert stat.S_IMODE(os.stat(journal / entries[0]).st_mode) == 0o600
    spool = cache / entries[0][:-5]
    assert stat.S_IMODE(os.stat(spool).st_mode) == 0o600
    assert os.path.getsize(spool) == 1000


def test_unmount_uploads_pending(sim, boxfs_factory):
    m = boxfs_factory(sim, "writeback=600")
    files = {"u%d" % i: data_of(3000 + i, 10 + i) for i in range(3)}
    for n, d in files.items():
        write_file(m.path / n, d)
    assert all(sim.client.find(n) is None for n in files)
    assert m.unmount() == []
    for n, d in files.items():
        assert_server_file(sim.client, n, d)
    err = m.stderr_text()
    assert "uploading 3 pending files before unmount" in err, err
    assert "all 3 pending files uploaded" in err, err


def test_unmount_keeps_what_fails_for_the_next_start(sim, boxfs_factory,
                                                     tmp_path):
    cache = tmp_path / "cache-keep"
    cache.mkdir(mode=0o700)
    opts = ("writeback=600", "retries=0")
    m = boxfs_factory(sim, *opts, cache_dir=cache)
    data = data_of(2000, 25)
    write_file(m.path / "f", data)
    sim.add_fault("kind=status,status=500,count=0,method=POST,path=" + SIMPLE)
    assert m.unmount() == []             # exits (status 0) all the same
    err = m.stderr_text()
    assert "uploading 1 pending file before unmount" in err, err
    assert "1 file could not be uploaded; kept in the journal" in err, err
    assert sim.client.find("f") is None
    assert len(os.listdir(cache / "journal")) == 1
    sim.clear_faults()
    boxfs_factory(sim, *opts, cache_dir=cache)
    wait_until(lambda: sim.client.find("f"), 15, "the commit at the restart")
    assert_server_file(sim.client, "f", data)


def _fusermount(path):
    return subprocess.run(["fusermount3", "-u", str(path)],
                          capture_output=True, text=True, timeout=10)


def test_unmount_refuse_while_pending(sim, boxfs_factory):
    m = boxfs_factory(sim, "writeback=2", "unmount=refuse")
    data = data_of(3000, 20)
    write_file(m.path / "b", data)

    def holds_root():
        fds = "/proc/%d/fd" % m.proc.pid
        return any(os.readlink(os.path.join(fds, f)) == str(m.path)
                   for f in os.listdir(fds))
    wait_until(holds_root, 10, "the daemon to hold the mount busy")
    r = _fusermount(m.path)
    assert r.returncode != 0 and "busy" in r.stderr.lower(), r
    assert sim.client.find("b") is None
    wait_until(lambda: sim.client.find("b"), 15, "the commit")
    wait_until(lambda: not holds_root(), 10, "the busy fd to go")
    # the kernel drops the busy reference once it processed the release
    wait_until(lambda: _fusermount(m.path).returncode == 0, 10,
               "unmount to succeed once nothing is pending")
    assert m.unmount() == []
    assert_server_file(sim.client, "b", data)


def _kill_mid_upload(sim, m, names, want_parts=1):
    """Once `want_parts` parts were accepted, SIGKILL boxfs."""
    def accepted():
        return len([e for e in sim.log(settle=False) if e["method"] == "PUT" and
                    e["path"].startswith(SESS + "/") and e["status"] == 200])
    wait_until(lambda: accepted() >= want_parts, 30, "some parts sent")
    m.kill("the test kills boxfs mid-upload")
    m.wait_exit(10)
    for n in names:
        assert sim.client.find(n) is None, "%s committed before the kill" % n


def _restart_until_committed(sim, boxfs_factory, opts, cache, name, data):
    """Mount again on the same cache_dir; the request log of the resume."""
    mark = sim.log_mark()
    boxfs_factory(sim, *opts, cache_dir=cache)
    wait_until(lambda: on_server(sim, name, data), 30, "the resumed " + name)
    assert_server_file(sim.client, name, data)
    return sim.log(since=mark)


def _accepted_ranges(log):
    _, sessions, _ = upload_requests(log)
    return {sid: [e["content_range"] for e in reqs
                  if e["method"] == "PUT" and e["status"] == 200]
            for sid, reqs in sessions.items()}


def _slow_mount(boxsim_factory, boxfs_factory, tmp_path, writeback, ms):
    """boxsim with small parts whose PUTs take `ms`, boxfs on a cache_dir
    that a second mount can reuse. Returns (sim, cache, opts, mount)."""
    sim = small_sim(boxsim_factory)
    cache = tmp_path / "cache-kept"
    cache.mkdir(mode=0o700)
    opts = ["chunked_min=%d" % CM, "part_parallel=1"]
    if writeback:
        opts.append("writeback=%s" % writeback)
    m = boxfs_factory(sim, *opts, cache_dir=cache)
    sim.add_fault("kind=delay,ms=%d,count=0,method=PUT,path=%s/*" % (ms, SESS))
    return sim, cache, opts, m


@pytest.mark.boxfs_timeout(120)
def test_kill9_mid_upload_resumes_without_resending(boxsim_factory,
                                                   boxfs_factory, tmp_path):
    sim, cache, opts, m = _slow_mount(boxsim_factory, boxfs_factory,
                                      tmp_path, 30, 300)
    files = {"k%d" % i: data_of(4 * PS + 1000 * i, 30 + i) for i in range(3)}
    write_declared(m.path / "k0", files["k0"])     # parts stream meanwhile
    write_declared(m.path / "k1", files["k1"])
    write_file(m.path / "k2", files["k2"])         # nothing sent yet
    _kill_mid_upload(sim, m, files)
    before = _accepted_ranges(sim.log())
    sim.clear_faults()
    m2 = boxfs_factory(sim, *opts, cache_dir=cache)
    for n, d in files.items():
        wait_until(lambda: on_server(sim, n, d), 30, "resumed " + n)
        assert_server_file(sim.client, n, d)
    log = sim.log()
    ranges = _accepted_ranges(log)
    for sid, rs in ranges.items():
        assert len(rs) == len(set(rs)), "a part sent twice in %s: %r" % (
            sid, rs)
    # at least one file went on with the session it had before the kill
    commits = [e["path"].split("/")[-2] for e in log if e["method"] == "POST"
               and e["path"].endswith("/commit") and e["status"] == 201]
    assert len(commits) == 3, commits
    resumed = [sid for sid in commits if before.get(sid)]
    assert resumed, "no session was resumed: %r %r" % (before, commits)
    print("parts before the kill:", {k: len(v) for k, v in before.items()},
          "after:", {k: len(v) for k, v in ranges.items()})
    assert "resuming" in m2.stderr_text(), m2.stderr_text()
    wait_until(lambda: os.listdir(cache / "journal") == [], 5,
               "an empty journal")


@pytest.mark.boxfs_timeout(90)
def test_kill9_partial_session_sends_only_missing_parts(boxsim_factory,
                                                       boxfs_factory,
                                                       tmp_path):
    sim, cache, opts, m = _slow_mount(boxsim_factory, boxfs_factory,
                                      tmp_path, 0.2, 400)
    data = data_of(5 * PS + 77, 41)
    write_file(m.path / "p", data)   # burst: the commit makes the session
    _kill_mid_upload(sim, m, ["p"], 2)
    before = _accepted_ranges(sim.log())
    assert len(before) == 1, before
    sid, sent = next(iter(before.items()))
    assert 2 <= len(sent) < 6, sent
    sim.clear_faults()
    log = _restart_until_committed(sim, boxfs_factory, opts, cache, "p", data)
    _, sessions, creates = upload_requests(log)
    assert creates == [] and list(sessions) == [sid], (creates, sessions)
    after = _accepted_ranges(log)[sid]
    assert sorted(sent + after) == sorted(expected_ranges(len(data), PS)), \
        (sent, after)


@pytest.mark.boxfs_timeout(90)
def test_kill9_expired_session_gets_a_new_one(boxsim_factory, boxfs_factory,
                                             tmp_path):
    sim, cache, opts, m = _slow_mount(boxsim_factory, boxfs_factory,
                                      tmp_path, 30, 300)
    data = data_of(4 * PS + 5, 40)
    write_declared(m.path / "e", data)
    _kill_mid_upload(sim, m, ["e"])
    sim.clear_faults()
    sim.add_fault("kind=expire,path=%s/*" % SESS)   # the session died
    log = _restart_until_committed(sim, boxfs_factory, opts, cache, "e", data)
    _, sessions, creates = upload_requests(log)
    assert [e["status"] for e in creates] == [201], creates
    # the resume asked for the parts, heard 410 and started anew
    assert [e["method"] for e in log if e.get("fault") == "expire"] == \
        ["GET"], log


@pytest.mark.boxfs_timeout(90)
def test_kill9_default_mode_leaves_nothing(boxsim_factory, boxfs_factory,
                                          tmp_path):
    sim, cache, opts, m = _slow_mount(boxsim_factory, boxfs_factory,
                                      tmp_path, 0, 400)
    data = data_of(4 * PS, 50)
    pid = os.fork()
    if pid == 0:        # the writer blocks in close() until the kill
        try:
            write_file(m.path / "d", data)
        finally:
            os._exit(0)
    try:
        _kill_mid_upload(sim, m, ["d"])
    finally:
        os.waitpid(pid, 0)
    sim.clear_faults()
    m2 = boxfs_factory(sim, *opts, cache_dir=cache)
    assert "removed 1 spool file" in m2.stderr_text(), m2.stderr_text()
    assert sim.client.find("d") is None
    assert os.listdir(cache / "journal") == []
