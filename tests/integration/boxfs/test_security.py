"""Security: the access token and the OAuth refresh token and client secret
never show in the daemon's output (even with -d), its /proc cmdline and
environ, error messages, spool files or the status xattrs; TLS is verified
unless the server's CA is given with -o cafile=; allow_other is off by
default and default_permissions is always on; a cache_dir others can enter
is refused. (Elsewhere: test_fs_mount.py refuses a token file readable by
others and never echoes a refused token; test_upload_spool.py checks the
spool's 0700 directory and 0600 files.)"""

import errno
import json
import os
import stat
import subprocess

import pytest

from boxsimctl import self_signed_cert
from boxfs_helpers import assert_server_file, data_of, errno_of, write_file
from test_fs_mount import assert_failed_mount

TOKEN = "Sec-ACCESS-token-5f1e9a0c77d2"
CID, CSECRET, RT0 = "sec-client", "sec-CLIENT-secret-8b3d", "sec-REFRESH-0-c4e1"


def scan_tree(d):
    """All bytes of the regular files under d (spool, token lock, ...)."""
    out = b""
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            try:
                with open(p, "rb") as fh:
                    out += fh.read()
            except OSError:
                pass
    return out


def assert_absent(secrets, **where):
    for name, blob in where.items():
        if isinstance(blob, str):
            blob = blob.encode()
        for s in secrets:
            assert s.encode() not in blob, "%s leaked into %s" % (s, name)


def proc(m, what):
    """/proc/PID/<what> of the daemon. Under BOXFS_WRAPPER (valgrind) the
    process is the tool, whose initial environment block is not the one
    the daemon can wipe: environ is then not the daemon's and reads as
    empty here (cmdline is the tool's argv, which holds no secrets)."""
    if what == "environ" and os.environ.get("BOXFS_WRAPPER"):
        return b""
    with open("/proc/%d/%s" % (m.proc.pid, what), "rb") as f:
        return f.read()


def test_token_absent_everywhere(boxsim_factory, boxfs_factory, tmp_path):
    sim = boxsim_factory(token=TOKEN)
    cache = tmp_path / "spool"
    m = boxfs_factory(sim, "-d", "chunked_min=2097152", cache_dir=cache)
    # BOX_TOKEN was in the environment the daemon started with
    assert TOKEN in m.env.get("BOX_TOKEN", "")
    data = data_of(300000, 11)
    fd = os.open(m.path / "open.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        spool = scan_tree(cache)
        assert data[:1000] in spool, "the spool was not where we looked"
        assert_absent([TOKEN], cmdline=proc(m, "cmdline"),
                      environ=proc(m, "environ"), spool=spool,
                      state=os.getxattr(m.path / "open.bin",
                                        "user.boxfs.state"),
                      status=os.getxattr(m.path, "user.boxfs.status"))
    finally:
        os.close(fd)
    assert_server_file(sim.client, "open.bin", data)
    # an error path: the server refuses the token (401, no refresh possible)
    sim.add_fault("kind=status,status=401,count=0,method=POST,"
                  "path=/2.0/folders")
    assert errno_of(os.mkdir, m.path / "newdir") == errno.EACCES
    sim.clear_faults()
    assert m.unmount() == []
    out = m.stderr_text() + m.stdout_text()
    assert "open.bin" in out, "-d logged nothing useful"
    assert_absent([TOKEN, "Bearer"], stderr=out)


@pytest.fixture
def osim(boxsim_factory):
    return boxsim_factory(extra_args=("--client-id", CID, "--client-secret",
                                      CSECRET, "--refresh-token", RT0))


def test_refresh_token_absent_everywhere(osim, boxfs_factory, tmp_path):
    tf = tmp_path / "oauth.json"
    tf.write_text(json.dumps({"client_id": CID, "client_secret": CSECRET,
                              "refresh_token": RT0}))
    tf.chmod(0o600)
    cache = tmp_path / "spool"
    m = boxfs_factory(osim, "-d", "token_file=%s" % tf, cache_dir=cache,
                      env={"BOX_TOKEN": None})
    data = data_of(5000, 12)
    fd = os.open(m.path / "r.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        secrets = [RT0, CSECRET, json.loads(tf.read_text())["refresh_token"]]
        assert_absent(secrets, cmdline=proc(m, "cmdline"),
                      environ=proc(m, "environ"), spool=scan_tree(cache),
                      status=os.getxattr(m.path, "user.boxfs.status"),
                      state=os.getxattr(m.path / "r.bin", "user.boxfs.state"))
    finally:
        os.close(fd)
    assert_server_file(osim.client, "r.bin", data)
    # a 401 makes the daemon refresh (rotating the refresh token)
    osim.add_fault("kind=status,status=401,method=POST,path=/2.0/folders")
    (m.path / "after401").mkdir()
    assert osim.client.find("after401") is not None
    assert m.unmount() == []
    rotated = json.loads(tf.read_text())["refresh_token"]
    assert rotated != RT0
    assert stat.S_IMODE(os.stat(tf).st_mode) == 0o600
    secrets.append(rotated)
    assert_absent(secrets, stderr=m.stderr_text() + m.stdout_text(),
                  spool=scan_tree(cache))


def _self_signed(tmp_path):
    pair = self_signed_cert(tmp_path)
    if not pair:
        pytest.skip("openssl cannot make a certificate")
    return pair


def test_tls_verified_by_default(boxsim_factory, boxfs_factory, tmp_path):
    cert, key = _self_signed(tmp_path)
    sim = boxsim_factory(tls=(cert, key))
    assert sim.api.startswith("https://")
    # the system's CAs do not know boxsim: refused before mounting
    m = boxfs_factory(sim, wait=False)
    line, _ = assert_failed_mount(m)
    assert "users/me" in line, line
    assert not any(e["path"] == "/2.0/users/me" for e in sim.log()), \
        "a request got through an unverified connection"
    # trusting its CA: mounts and works
    m2 = boxfs_factory(sim, "cafile=%s" % cert)
    write_file(m2.path / "tls.txt", b"over verified tls")
    assert_server_file(sim.client, "tls.txt", b"over verified tls")


def mount_options(path):
    """Per-mount and super-block options of the mount at path."""
    path = os.path.abspath(str(path))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                sep = parts.index("-")
                return parts[5].split(",") + parts[sep + 3].split(",")
    raise AssertionError("%s is not mounted" % path)


def test_mount_options_safe_by_default(mnt):
    words = mount_options(mnt.path)
    assert "allow_other" not in words, words
    assert "default_permissions" in words, words
    # someone else (uid 65534) cannot enter the mount
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", "ls", str(mnt.path)],
                       capture_output=True, timeout=30)
    assert r.returncode != 0


def test_allow_other_comes_with_default_permissions(sim, boxfs_factory):
    m = boxfs_factory(sim, "allow_other")
    words = mount_options(m.path)
    assert "allow_other" in words and "default_permissions" in words, words


@pytest.mark.parametrize("mode", [0o755, 0o770])
def test_open_cache_dir_refused(sim, boxfs_factory, tmp_path, mode):
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    cache.chmod(mode)
    m = boxfs_factory(sim, cache_dir=cache, wait=False)
    line, _ = assert_failed_mount(m)
    assert str(cache) in line and "chmod 700" in line, line
    assert stat.S_IMODE(os.stat(cache).st_mode) == mode, "changed the mode"



# --- bad user input: one clear line, non-zero exit, nothing mounted -------

@pytest.mark.parametrize("opt", [
    "retries=-1", "mem_budget=0", "api_url=ftp://example.com", "root_id=abc",
    "cache_dir=relative/dir", "part_parallel=0", "io_timeout=soon",
    "chunked_min=5X", "attr_ttl=-1", "spool_max=99999999999999999999T",
    "upload_threads=99999999999"])
def test_bad_option_value(sim, boxfs_factory, opt):
    m = boxfs_factory(sim, opt, wait=False)
    line, _ = assert_failed_mount(m)
    assert opt.split("=")[0] in line, line
    assert sim.log() == [], "asked the server despite a bad option"


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "garbage",
                                  "env-empty", "env-garbage"])
def test_bad_token(sim, boxfs_factory, tmp_path, case):
    tf = tmp_path / "token"
    env = {"BOX_TOKEN": None}
    opts = ("token_file=%s" % tf,)
    if case == "directory":
        tf.mkdir(mode=0o700)
    elif case == "empty":
        tf.write_bytes(b"")
    elif case == "garbage":
        tf.write_bytes(b"Sec-not a token\x01\xff\nsecond line\n")
    if case in ("empty", "garbage"):
        tf.chmod(0o600)
    if case.startswith("env"):
        opts = ()
        env = {"BOX_TOKEN": "" if case == "env-empty" else "Sec-bad token\n"}
    m = boxfs_factory(sim, *opts, env=env, wait=False)
    line, _ = assert_failed_mount(m)
    assert "token" in line.lower(), line
    assert "Sec-" not in line, "the bad token is echoed: " + line
    assert not any(e["status"] == 200 for e in sim.log()), sim.log()
