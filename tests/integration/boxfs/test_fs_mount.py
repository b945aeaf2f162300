"""Mounting: the checks made before mounting fail fast with one clear line
that never contains the token; transient server errors at mount time are
retried invisibly; statfs comes from /users/me."""

import errno
import json
import os
import re
import signal
import socket
import time
import types

import pytest

from boxfs_helpers import BOXFS, log_requests, run

SECRET = "s3cr3t-T0KEN-must-not-leak-91c2"


def refused_port():
    """A loopback port on which nothing listens (connect -> ECONNREFUSED)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fake_sim(base, token=SECRET):
    return types.SimpleNamespace(api=base + "/2.0", upload=base + "/api/2.0",
                                 token=token)


def assert_failed_mount(m, timeout=40):
    """The daemon exits non-zero in time, mounts nothing and says one line
    without the token in it.  Returns that line."""
    t0 = time.monotonic()
    rc = m.wait_exit(timeout)
    took = time.monotonic() - t0
    err = m.stderr_text() + m.stdout_text()
    assert rc > 0, "boxfs exited with %s (want a failure status); out: %r" % (
        rc, err)
    assert not os.path.ismount(m.path), "mounted despite the failure"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, "want one clear line, got %d: %r" % (len(lines),
                                                                 err)
    assert SECRET not in err and "Bearer" not in err, err
    return lines[0], took


def test_unreachable_server_fails_fast(boxfs_factory):
    port = refused_port()
    m = boxfs_factory(fake_sim("http://127.0.0.1:%d" % port), wait=False)
    line, took = assert_failed_mount(m)
    assert re.search(r"127\.0\.0\.1|connect|unreachable|refused", line,
                     re.I), line
    assert took < 35, "took %.1fs to give up on a refused connection" % took


def test_refused_token_fails_at_mount(boxsim_factory, boxfs_factory):
    sim = boxsim_factory(token="the-right-token")
    mark = sim.log_mark()
    m = boxfs_factory(sim, env={"BOX_TOKEN": SECRET}, wait=False)
    line, _ = assert_failed_mount(m)
    assert "the-right-token" not in line
    assert re.search(r"token|auth|401|unauthori[sz]ed|denied|refused", line,
                     re.I), line
    # The daemon asked the server (it did not just guess).
    reqs = log_requests(sim, mark)
    assert any(e["status"] == 401 for e in reqs), reqs


def test_missing_token_fails_at_mount(sim, boxfs_factory):
    mark = sim.log_mark()
    m = boxfs_factory(sim, env={"BOX_TOKEN": None}, wait=False)
    line, _ = assert_failed_mount(m)
    assert re.search(r"token", line, re.I), line
    assert not any(e["status"] == 200 for e in log_requests(sim, mark))


def test_unknown_option_fails(sim, boxfs_factory):
    m = boxfs_factory(sim, "no_such_boxfs_option=1", wait=False)
    rc = m.wait_exit(15)
    assert rc > 0
    assert not os.path.ismount(m.path)
    assert "no_such_boxfs_option" in m.stderr_text() + m.stdout_text()


def test_token_file_mounts(sim, boxfs_factory, tmp_path):
    tf = tmp_path / "token"
    tf.write_text(sim.token + "\n")
    tf.chmod(0o600)
    m = boxfs_factory(sim, "token_file=%s" % tf, env={"BOX_TOKEN": None})
    assert os.listdir(m.path) == []
    assert sim.token not in " ".join(m.argv)


def test_token_file_readable_by_others_refused(sim, boxfs_factory, tmp_path):
    tf = tmp_path / "token"
    tf.write_text(SECRET + "\n")
    tf.chmod(0o644)
    m = boxfs_factory(sim, "token_file=%s" % tf, env={"BOX_TOKEN": None},
                      wait=False)
    line, _ = assert_failed_mount(m)
    assert str(tf) in line or re.search(r"mode|permission|readable", line,
                                        re.I), line


def test_transient_errors_at_mount_are_retried(boxsim_factory, boxfs_factory):
    sim = boxsim_factory(faults=(
        "kind=status,status=503,retry_after=1,path=/2.0/users/me",))
    mark = sim.log_mark()
    m = boxfs_factory(sim)
    assert os.listdir(m.path) == []
    me = [e for e in log_requests(sim, mark) if e["path"] == "/2.0/users/me"]
    assert [e["status"] for e in me][:2] == [503, 200], me


def test_statfs_from_users_me(mnt, sim):
    st, hdrs, body = sim.client.request("GET", sim.api + "/users/me")
    assert st == 200
    me = json.loads(body)
    vfs = os.statvfs(mnt.path)
    total = vfs.f_blocks * vfs.f_frsize
    free = vfs.f_bavail * vfs.f_frsize
    amount, used = int(me["space_amount"]), int(me["space_used"])
    # Block rounding only.
    assert abs(total - amount) <= max(vfs.f_frsize, 1 << 20), (total, amount)
    assert abs(free - (amount - used)) <= max(vfs.f_frsize, 1 << 20), \
        (free, amount, used)
    assert vfs.f_namemax >= 255


def test_unmount_exits_cleanly(mnt):
    (mnt.path / "x").write_bytes(b"x")
    assert mnt.unmount() == []
    assert mnt.proc.returncode == 0
    assert not os.path.ismount(mnt.path)


@pytest.mark.boxfs_timeout(8)
@pytest.mark.boxfs_watchdog_expected
def test_watchdog_turns_a_hang_into_enotconn(mnt):
    """The fixture's own safety net: a SIGSTOPped daemon hangs every request;
    the watchdog must SIGKILL it so the blocked stat returns ENOTCONN
    instead of hanging the suite."""
    os.kill(mnt.proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(OSError) as ei:
        os.stat(mnt.path / "anything")
    assert ei.value.errno in (errno.ENOTCONN, errno.ECONNABORTED), ei.value
    assert time.monotonic() - t0 < 60
    assert (mnt.killed_by_us or "").startswith("watchdog"), mnt.killed_by_us


def test_help_and_version():
    r = run(BOXFS, "--help", check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for opt in ("api_url", "upload_url", "token_file", "cache_dir",
                "root_id", "BOX_TOKEN"):
        assert opt in out, opt
    r = run(BOXFS, "--version", check=False)
    assert r.returncode == 0 and re.search(r"\d+\.\d+", r.stdout + r.stderr)


def test_token_never_logged_even_with_debug(boxsim_factory, boxfs_factory):
    sim = boxsim_factory(token=SECRET)
    m = boxfs_factory(sim, "-d")
    (m.path / "d").mkdir()
    (m.path / "d/f").write_bytes(b"data")
    assert (m.path / "d/f").read_bytes() == b"data"
    os.rename(m.path / "d/f", m.path / "d/g")
    os.unlink(m.path / "d/g")
    assert m.unmount() == []
    err = m.stderr_text() + m.stdout_text()
    assert "POST" in err or "GET" in err or len(err) > 200, \
        "-d should log something about the requests"
    assert SECRET not in err
    assert "Bearer" not in err
