"""A refused token refresh does not lose data: the state says "waiting for
authentication: <reason>", uploads wait and retry, re-reading token_file
each time, so fixing the file lets them finish (write-back: indefinitely;
default mode: close() waits up to auth_wait, then EACCES and nothing in
Box)."""

import errno
import json
import os
import threading

import pytest

from boxfs_helpers import assert_server_file, data_of, errno_of, wait_until, \
    write_file
from test_config import CID, RT0, SECRET, _refresh_status, _token_file

RT_NEW = "auth-wait-new-refresh-token"
SIMPLE = "/api/2.0/files/content"
STATE = "user.boxfs.state"


@pytest.fixture
def osim(boxsim_factory):
    return boxsim_factory(extra_args=(
        "--client-id", CID, "--client-secret", SECRET,
        "--refresh-token", RT0, "--refresh-token", RT_NEW))


def refuse_refresh(sim):
    """The next upload gets a 401; every refresh is refused (HTTP 400)."""
    sim.add_fault("kind=status,status=401,count=1,method=POST,path=" + SIMPLE)
    sim.add_fault("kind=status,status=400,count=0,method=POST,"
                  "path=/oauth2/token")


def fix_token_file(sim, tf):
    """What a user does: put a new refresh token in the file."""
    sim.clear_faults()
    conf = json.loads(tf.read_text())
    conf["refresh_token"] = RT_NEW
    tmp = tf.with_name("fixed.tmp")
    tmp.write_text(json.dumps(conf))
    tmp.chmod(0o600)
    os.replace(tmp, tf)


def state(path):
    try:
        return os.getxattr(path, STATE).decode()
    except FileNotFoundError:    # not created yet
        return ""


def test_writeback_waits_for_a_fixed_token_file(osim, boxfs_factory,
                                                tmp_path):
    tf = _token_file(tmp_path)
    m = boxfs_factory(osim, "token_file=%s" % tf, "writeback=0.3",
                      env={"BOX_TOKEN": None})
    refuse_refresh(osim)
    data = data_of(4000, 60)
    write_file(m.path / "w", data)        # durable locally: close is fine
    wait_until(lambda: state(m.path / "w").startswith(
        "waiting for authentication: refresh failed (HTTP 400)"), 15,
        "the waiting state: %r" % state(m.path / "w"))
    assert osim.client.find("w") is None
    err = m.stderr_text()
    assert err.count("uploads wait and retry") == 1, err
    fix_token_file(osim, tf)
    wait_until(lambda: osim.client.find("w"), 20, "the upload after the fix")
    assert_server_file(osim.client, "w", data)
    assert _refresh_status(osim, RT_NEW) == 400, "the new token was not used"
    assert json.loads(tf.read_text())["refresh_token"] not in (RT0, RT_NEW)
    assert RT_NEW not in m.stderr_text() and SECRET not in m.stderr_text()


def test_close_waits_for_the_fix(osim, boxfs_factory, tmp_path):
    tf = _token_file(tmp_path)
    m = boxfs_factory(osim, "token_file=%s" % tf, "auth_wait=60",
                      env={"BOX_TOKEN": None})
    refuse_refresh(osim)
    data = data_of(3000, 61)
    res = {}
    t = threading.Thread(target=lambda: res.setdefault(
        "errno", errno_of(write_file, m.path / "c", data)))
    t.start()
    try:
        wait_until(lambda: state(m.path / "c").startswith(
            "waiting for authentication"), 15, "the waiting state")
        assert osim.client.find("c") is None
        fix_token_file(osim, tf)
    finally:
        t.join(60)
    assert res.get("errno") == 0, res
    assert_server_file(osim.client, "c", data)


def test_close_gives_eacces_after_auth_wait(osim, boxfs_factory, tmp_path):
    tf = _token_file(tmp_path)
    m = boxfs_factory(osim, "token_file=%s" % tf, "auth_wait=2",
                      env={"BOX_TOKEN": None})
    refuse_refresh(osim)
    mark = osim.log_mark()
    got = errno_of(write_file, m.path / "x", data_of(100, 62))
    assert got == errno.EACCES, errno.errorcode.get(got, got)
    assert osim.client.find("x") is None
    tries = [e for e in osim.log(since=mark) if e["path"] == "/oauth2/token"]
    assert len(tries) >= 2, tries       # the file was tried again meanwhile
