"""Issue 8: the config file, fstab-style mounts through mount.fuse3, and
OAuth2 token files across restarts of boxfs (owner: engineer F)."""

import json
import os
import pathlib
import signal
import subprocess
import time
import urllib.parse

import pytest

from boxfs_helpers import BOXFS, SANITIZED, assert_server_file, data_of, \
    is_fuse_mount
from boxapi import BoxClient

SLOW = 2.0 if SANITIZED else 1.0
PS = 1 << 20
CM = 2 * PS
CID, SECRET, RT0 = "cfg-client", "cfg-secret", "cfg-first-refresh-token"


def run(argv, timeout=30, **kw):
    """Every command touching the mount runs in a child with a timeout:
    a hung daemon fails the test instead of hanging pytest."""
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout * SLOW, **kw)


def write_via(path, data):
    r = run(["dd", "of=%s" % path, "bs=64k", "status=none"], input=data)
    assert r.returncode == 0, r.stderr


def sessions(sim, mark):
    return [e for e in sim.log(since=mark)
            if e["method"] == "POST" and e["path"].startswith("/api/2.0/files")
            and e["path"].endswith("/upload_sessions")]


def write_config(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_config_file_is_read(boxsim_factory, boxfs_factory, tmp_path):
    """$XDG_CONFIG_HOME/boxfs/config applies without -o config=."""
    sim = boxsim_factory(part_size=PS, chunked_min=CM)
    xdg = tmp_path / "xdg"
    write_config(xdg / "boxfs" / "config",
                 "# small files still use upload sessions\n\n"
                 "  chunked_min = %d  \npart_parallel=2\n" % CM)
    m = boxfs_factory(sim, env={"XDG_CONFIG_HOME": xdg})
    data = data_of(3 * PS, seed=1)
    mark = sim.log_mark()
    write_via(m.path / "a.bin", data)
    assert len(sessions(sim, mark)) == 1
    assert_server_file(sim.client, "a.bin", data)


def test_command_line_overrides_config(boxsim_factory, boxfs_factory,
                                       tmp_path):
    sim = boxsim_factory(part_size=PS, chunked_min=CM)
    cfg = write_config(tmp_path / "cfg", "chunked_min=%d\n" % CM)
    # the config alone: a session
    m = boxfs_factory(sim, "config=%s" % cfg,
                      env={"XDG_CONFIG_HOME": tmp_path / "none"})
    data = data_of(3 * PS, seed=2)
    mark = sim.log_mark()
    write_via(m.path / "b.bin", data)
    assert len(sessions(sim, mark)) == 1
    m.unmount()
    assert not m.problems
    # -o after it wins: a plain upload
    m = boxfs_factory(sim, "config=%s" % cfg, "chunked_min=100M",
                      env={"XDG_CONFIG_HOME": tmp_path / "none"})
    mark = sim.log_mark()
    write_via(m.path / "c.bin", data)
    log = sim.log(since=mark)
    assert not [e for e in log if "upload_sessions" in e["path"]]
    assert [e for e in log if e["method"] == "POST"
            and e["path"] == "/api/2.0/files/content"]
    assert_server_file(sim.client, "c.bin", data)


@pytest.mark.parametrize("text,lineno,words", [
    ("dir_ttl=5\n# ok\nbogus_option=1\n", 3, "unknown option"),
    ("\ntoken=abc123secret\n", 2, "token_file"),
    ("dir_ttl 5\n", 1, "option name"),
    ("attr_ttl=\n", 1, "missing value"),
    ("allow_other=yes\n", 1, "takes no value"),
    ("dir_ttl=5\n\nattr_ttl=abc\n", 3, "invalid value 'abc' for attr_ttl"),
])
def test_bad_config_line(sim, boxfs_factory, tmp_path, text, lineno, words):
    cfg = write_config(tmp_path / "bad.conf", text)
    m = boxfs_factory(sim, "config=%s" % cfg, wait=False)
    assert m.wait_exit(15) == 1
    err = m.stderr_text()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "%s:%d:" % (cfg, lineno) in lines[0], err
    assert words in lines[0], err
    assert "abc123secret" not in err
    assert not is_fuse_mount(m.path)


def test_missing_named_config_fails(sim, boxfs_factory, tmp_path):
    m = boxfs_factory(sim, "config=%s" % (tmp_path / "nope"), wait=False)
    assert m.wait_exit(15) == 1
    assert "nope: No such file" in m.stderr_text()


def _daemon_pids(mp):
    """PIDs of boxfs processes whose argv names mountpoint mp (from /proc,
    never touching the mount)."""
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"boxfs" and \
                str(mp).encode() in argv:
            pids.append(int(d.name))
    return pids


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        st = pathlib.Path("/proc/%d/stat" % pid).read_text()
        return st.split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


@pytest.mark.boxfs_timeout(120)
def test_fstab_mount_through_mount_fuse3(sim, tmp_path):
    """What `mount -t fuse.boxfs box MNT -o ...` and an fstab line
    `box MNT fuse.boxfs _netdev,...` run: mount.fuse3 finds boxfs in PATH,
    passes the source word, and boxfs daemonizes."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "boxfs").symlink_to(os.path.abspath(BOXFS))
    tok = tmp_path / "token"
    tok.write_text(sim.token + "\n")
    tok.chmod(0o600)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    mp = tmp_path / "mnt"
    mp.mkdir()
    cfg = write_config(tmp_path / "cfg", "api_url=%s\nupload_url=%s\n"
                       % (sim.api, sim.upload))
    opts = "_netdev,nofail,rw,dev,suid,config=%s,token_file=%s,cache_dir=%s" \
        % (cfg, tok, cache)
    env = dict(os.environ)
    env["PATH"] = "%s:%s" % (bindir, env.get("PATH", "/usr/bin:/bin"))
    env.pop("BOX_TOKEN", None)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "none")
    # the daemon's stderr is /dev/null: sanitizer reports go to files
    san = tmp_path / "san"
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env[k] = ":".join(filter(None, [env.get(k), "log_path=%s" % san]))
    out = open(tmp_path / "mount.out", "wb")
    pids = []
    try:
        # files, not pipes: the daemon must not hold our pipe open
        r = subprocess.run(["mount.fuse3", "boxfs#box", str(mp), "-o", opts],
                           stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, env=env,
                           timeout=30 * SLOW)
        text = (tmp_path / "mount.out").read_text(errors="replace")
        assert r.returncode == 0, text
        deadline = time.monotonic() + 30 * SLOW
        while time.monotonic() < deadline and not (
                is_fuse_mount(mp) and _daemon_pids(mp)):
            time.sleep(0.1)
        pids = _daemon_pids(mp)
        assert pids, "no boxfs daemon for %s; output:\n%s" % (mp, text)
        assert is_fuse_mount(mp), text
        ent = [ln for ln in open("/proc/self/mountinfo")
               if " %s " % mp in ln]
        assert ent and "fuse.boxfs" in ent[0], ent
        # the daemon answers: do I/O only through children with timeouts
        data = data_of(100000, seed=3)
        write_via(mp / "fstab.bin", data)
        r = run(["ls", str(mp)])
        assert r.stdout.decode().split() == ["fstab.bin"], r
        assert_server_file(sim.client, "fstab.bin", data)
        r = run(["fusermount3", "-u", str(mp)])
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 20 * SLOW
        while time.monotonic() < deadline and not all(map(_gone, pids)):
            time.sleep(0.1)
        assert all(map(_gone, pids)), "daemon still running after unmount"
        reports = list(tmp_path.glob("san.*"))
        assert not reports, reports[0].read_text(errors="replace")[:4000]
    finally:
        out.close()
        if is_fuse_mount(mp):
            subprocess.run(["fusermount3", "-uz", str(mp)], timeout=10,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        for p in pids:
            if not _gone(p):
                os.kill(p, signal.SIGKILL)


# --- OAuth2 token files through real mounts -------------------------------

@pytest.fixture
def osim(boxsim_factory):
    return boxsim_factory(extra_args=("--client-id", CID, "--client-secret",
                                      SECRET, "--refresh-token", RT0))


def _token_file(tmp_path, rt=RT0):
    p = tmp_path / "oauth.json"
    p.write_text(json.dumps({"client_id": CID, "client_secret": SECRET,
                             "refresh_token": rt}))
    p.chmod(0o600)
    return p


def _refresh_status(sim, rt):
    c = BoxClient(sim.api, sim.upload, None)
    form = urllib.parse.urlencode({
        "grant_type": "refresh_token", "client_id": CID,
        "client_secret": SECRET, "refresh_token": rt}).encode()
    st, _, _ = c.request("POST", sim.base + "/oauth2/token", form,
                         {"Content-Type":
                          "application/x-www-form-urlencoded"})
    return st


def test_oauth_rotation_across_restart(osim, boxfs_factory, tmp_path):
    tf = _token_file(tmp_path)
    m = boxfs_factory(osim, "token_file=%s" % tf, env={"BOX_TOKEN": None})
    d1 = data_of(5000, seed=4)
    write_via(m.path / "one.txt", d1)
    m.unmount()
    assert not m.problems
    saved = json.loads(tf.read_text())
    rt1 = saved["refresh_token"]
    assert rt1 and rt1 != RT0
    assert saved["client_id"] == CID and saved["client_secret"] == SECRET
    assert os.stat(tf).st_mode & 0o077 == 0
    # restart on the rotated token
    m2 = boxfs_factory(osim, "token_file=%s" % tf, env={"BOX_TOKEN": None})
    d2 = data_of(6000, seed=5)
    write_via(m2.path / "two.txt", d2)
    r = run(["ls", str(m2.path)])
    assert sorted(r.stdout.decode().split()) == ["one.txt", "two.txt"]
    m2.unmount()
    assert not m2.problems
    rt2 = json.loads(tf.read_text())["refresh_token"]
    assert rt2 not in (RT0, rt1)
    assert_server_file(osim.client, "one.txt", d1)
    assert_server_file(osim.client, "two.txt", d2)
    # single use: every spent refresh token is refused by the server
    assert _refresh_status(osim, RT0) == 400
    assert _refresh_status(osim, rt1) == 400
    for s in (m.stderr_text(), m2.stderr_text()):
        for secret in (SECRET, RT0, rt1, rt2):
            assert secret not in s


def test_second_mount_on_token_file_refused(osim, boxfs_factory, tmp_path):
    tf = _token_file(tmp_path)
    m = boxfs_factory(osim, "token_file=%s" % tf, env={"BOX_TOKEN": None})
    m2 = boxfs_factory(osim, "token_file=%s" % tf, env={"BOX_TOKEN": None},
                       wait=False)
    assert m2.wait_exit(20) == 1
    err = m2.stderr_text()
    assert "in use by another boxfs mount" in err, err
    assert str(tf) in err
    assert not is_fuse_mount(m2.path)
    # the first mount is unharmed and its token still works
    d = data_of(3000, seed=6)
    write_via(m.path / "still.txt", d)
    assert_server_file(osim.client, "still.txt", d)
