"""Predicted sizes: cp, cat, dd and pv copy from a regular file whose size is
the final size, so boxfs streams their parts before close() as if the size
had been declared (include/predict.h). The copies are slowed by a delay on
part PUTs (backpressure holds the writer back), stopped with SIGSTOP once
three parts are written, and the request log must show part PUTs while the
stopped program cannot have closed the file. A source that grows or shrinks
during the copy ends with exactly the bytes written (one re-send counted);
-o predict=off and a writer with two input files stream nothing early."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from boxfs_helpers import assert_server_file, data_of, read_file, wait_until
from test_upload_sizes import (CM, PS, SESS, assert_parts_once,
                               committed_session, final_log, small_sim,
                               upload_requests)

N = 12 * PS + 4321      # 13 parts
SLOW_PUT = "kind=delay,method=PUT,path=%s/*,ms=200,count=0" % SESS


def ok_puts(sim, mark):
    return [e for e in sim.log(since=mark)
            if e["method"] == "PUT" and e["path"].startswith(SESS + "/")
            and e["status"] == 200]


def creates(sim, mark):
    return [e for e in sim.log(since=mark)
            if e["method"] == "POST" and e["path"].endswith("/upload_sessions")]


def counters(m):
    return json.loads(os.getxattr(m.path, "user.boxfs.status"))["counters"]


def mount(boxsim_factory, boxfs_factory, *opts):
    sim = small_sim(boxsim_factory)
    sim.add_fault(SLOW_PUT)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, "part_parallel=2", *opts)
    return sim, m


def source(tmp_path, n=N, seed=1):
    src = tmp_path / "src"
    data = data_of(n, seed)
    src.write_bytes(data)
    return src, data


def argv_of(tool, src, dst):
    if tool == "cp":
        return ["cp", str(src), str(dst)]
    if tool == "dd":
        return ["dd", "if=%s" % src, "of=%s" % dst, "bs=1M", "status=none"]
    if tool == "cat":  # exec: the shell's pid becomes cat's
        return ["sh", "-c", 'exec cat "$1" > "$2"', "-", str(src), str(dst)]
    if tool == "pv":
        return ["sh", "-c", 'exec pv -q "$1" > "$2"', "-", str(src), str(dst)]
    raise AssertionError(tool)


def stopped(p):
    with open("/proc/%d/stat" % p.pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def start_stopped(argv, dst, total, at=3 * PS):
    """Run argv; SIGSTOP it once dst has `at` bytes. The stopped program
    cannot close dst until SIGCONT."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def written():
            try:
                return os.stat(dst).st_size >= at
            except FileNotFoundError:
                return False
        wait_until(lambda: written() or p.poll() is not None, timeout=30,
                   what="%d bytes written" % at)
        p.send_signal(signal.SIGSTOP)
        wait_until(lambda: stopped(p), timeout=10, what="SIGSTOP")
        # still writing, so it has not reached close()
        assert os.stat(dst).st_size < total, \
            "%s wrote everything before it could be stopped" % argv[0]
    except BaseException:
        p.kill()
        p.wait()
        raise
    return p


def finish(p, sim):
    sim.clear_faults()  # proven what it had to: full speed from here
    p.send_signal(signal.SIGCONT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err


def src_pos(p, src):
    """The stopped copier's read position in src (from /proc fdinfo)."""
    fd_dir = "/proc/%d/fd" % p.pid
    for fd in os.listdir(fd_dir):
        if os.path.realpath(os.path.join(fd_dir, fd)) == str(src):
            with open("/proc/%d/fdinfo/%s" % (p.pid, fd)) as f:
                return int(f.readline().split()[1])
    raise AssertionError("the copier does not hold %s open" % src)


TOOLS = ["cp", "cat", "dd",
         pytest.param("pv", marks=pytest.mark.skipif(
             not shutil.which("pv"), reason="pv is not installed"))]


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.boxfs_timeout(120)
def test_copy_streams_before_close(boxsim_factory, boxfs_factory, tmp_path,
                                   tool):
    sim, m = mount(boxsim_factory, boxfs_factory)
    src, data = source(tmp_path)
    dst = m.path / ("copy-" + tool)
    mark = sim.log_mark()
    p = start_stopped(argv_of(tool, src, dst), dst, N)
    try:
        wait_until(lambda: len(ok_puts(sim, mark)) >= 1, timeout=20,
                   what="a part PUT while %s is stopped" % tool)
        assert len(creates(sim, mark)) == 1
        # a plain copy rewrites nothing: its first part is not held back
        # for the commit (as a declared size's is) but goes at once
        wait_until(lambda: any((e["content_range"] or "").startswith("bytes 0-")
                               for e in ok_puts(sim, mark)), timeout=20,
                   what="the first part PUT while %s is stopped" % tool)
    finally:
        finish(p, sim)
    assert_server_file(sim.client, dst.name, data)
    simple, sessions, made = upload_requests(final_log(sim, mark))
    assert len(made) == 1, "the file was sent twice: %r" % made
    assert_parts_once(committed_session(sessions), N, PS)
    assert counters(m)["resends"] == 0
    assert read_file(dst) == data


@pytest.mark.boxfs_timeout(120)
def test_copy_over_existing_file(boxsim_factory, boxfs_factory, tmp_path):
    """cp onto a file Box has: open(O_TRUNC), then the copy streams into a
    session for a new version of the same file id."""
    sim, m = mount(boxsim_factory, boxfs_factory)
    old = sim.client.upload("0", "old", b"previous content")
    src, data = source(tmp_path, seed=7)
    dst = m.path / "old"
    mark = sim.log_mark()
    p = start_stopped(argv_of("cp", src, dst), dst, N)
    try:
        wait_until(lambda: len(ok_puts(sim, mark)) >= 1, timeout=20,
                   what="a part PUT while cp is stopped")
        assert [e["path"] for e in creates(sim, mark)] == \
            ["/api/2.0/files/%s/upload_sessions" % old["id"]]
    finally:
        finish(p, sim)
    full = assert_server_file(sim.client, "old", data)
    assert full["id"] == old["id"]
    simple, sessions, made = upload_requests(final_log(sim, mark))
    assert len(made) == 1 and simple == []
    assert_parts_once(committed_session(sessions), N, PS)


@pytest.mark.parametrize("change", ["grow", "shrink"])
@pytest.mark.boxfs_timeout(120)
def test_source_changes_during_copy(boxsim_factory, boxfs_factory, tmp_path,
                                    change):
    """The prediction is wrong: the file still ends with exactly what the
    writer wrote, sent again from the spool (one re-send)."""
    sim, m = mount(boxsim_factory, boxfs_factory)
    src, data = source(tmp_path, seed=2)
    dst = m.path / ("changed-" + change)
    mark = sim.log_mark()
    p = start_stopped(argv_of("cp", src, dst), dst, N)
    try:
        wait_until(lambda: len(ok_puts(sim, mark)) >= 1, timeout=20,
                   what="streaming started")
        if change == "grow":
            extra = data_of(PS + 99, 3)
            with open(src, "ab") as f:
                f.write(extra)
            want = data + extra
        else:
            pos = src_pos(p, src)
            cut = pos + 2 * PS + 777
            assert cut < N, (pos, N)
            os.truncate(src, cut)
            want = data[:cut]
    finally:
        finish(p, sim)
    assert_server_file(sim.client, dst.name, want)
    assert read_file(dst) == want
    assert counters(m)["resends"] == 1
    simple, sessions, made = upload_requests(final_log(sim, mark))
    assert_parts_once(committed_session(sessions), len(want), PS)


WRITER = r"""
import os, sys
src, dst, extra = sys.argv[1:4]
others = [open(extra, "rb")] if extra != "-" else []
with open(src, "rb") as f:
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    while True:
        b = f.read(128 * 1024)
        if not b:
            break
        os.write(out, b)
    print("written", flush=True)
    sys.stdin.readline()
    os.close(out)
"""


def start_writer(src, dst, extra="-"):
    """WRITER copies src to dst (holding `extra` open for reading too),
    prints "written" and closes dst when a line arrives on its stdin. Its
    stderr is not pytest's capture file: that one is open for reading."""
    return subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(dst),
                             extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)


@pytest.mark.boxfs_timeout(120)
def test_two_inputs_no_prediction(boxsim_factory, boxfs_factory, tmp_path):
    """A writer reading one file streams; the same writer holding a second
    readable file open does not (which one would be the source?)."""
    sim, m = mount(boxsim_factory, boxfs_factory)
    src, data = source(tmp_path, n=4 * PS + 5, seed=5)
    other = tmp_path / "other"
    other.write_bytes(data_of(len(data), 6))
    for name, extra in (("one", "-"), ("two", str(other))):
        mark = sim.log_mark()
        p = start_writer(src, m.path / name, extra)
        try:
            assert p.stdout.readline() == "written\n"
            if extra == "-":
                wait_until(lambda: len(ok_puts(sim, mark)) >= 1, timeout=20,
                           what="parts before close (one input)")
            else:
                time.sleep(0.5)
                assert creates(sim, mark) == [], "predicted with 2 inputs"
        finally:
            p.communicate("close\n", timeout=60)
        assert p.returncode == 0
        assert_server_file(sim.client, name, data)
        simple, sessions, made = upload_requests(final_log(sim, mark))
        assert len(made) == 1
        assert_parts_once(committed_session(sessions), len(data), PS)


@pytest.mark.boxfs_timeout(120)
def test_predict_off(boxsim_factory, boxfs_factory, tmp_path):
    """The writer that streams in test_two_inputs_no_prediction sends
    nothing before close with -o predict=off."""
    sim, m = mount(boxsim_factory, boxfs_factory, "predict=off")
    src, data = source(tmp_path, n=4 * PS + 5, seed=4)
    mark = sim.log_mark()
    p = start_writer(src, m.path / "off")
    try:
        assert p.stdout.readline() == "written\n"
        time.sleep(0.5)  # what streaming would have sent by now
        assert creates(sim, mark) == [] and ok_puts(sim, mark) == []
    finally:
        p.communicate("close\n", timeout=60)
    assert p.returncode == 0
    assert_server_file(sim.client, "off", data)
    simple, sessions, made = upload_requests(final_log(sim, mark))
    assert len(made) == 1
    assert_parts_once(committed_session(sessions), len(data), PS)


def test_bad_predict_value(boxsim_factory, boxfs_factory, tmp_path):
    """A typo is one clear line, not a silent default; a config file line
    works like -o."""
    sim = boxsim_factory()
    m = boxfs_factory(sim, "predict=maybe", wait=False)
    assert m.wait_exit(15) == 1
    assert "invalid value 'maybe' for predict: expected on or off" in \
        m.stderr_text()
    cfg = tmp_path / "config"
    cfg.write_text("predict=off\n")
    m = boxfs_factory(sim, "config=%s" % cfg)
    assert os.path.ismount(m.path)
