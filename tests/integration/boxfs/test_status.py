"""`boxfs status MOUNTPOINT [--watch]`: reads the JSON in the xattr
user.boxfs.status of the mount root and prints uploads in flight (bytes,
parts, rate, ETA), queued and failed uploads with reasons, and counters.
The upload is slowed by a boxsim delay fault on its part PUTs so that it
can be watched while it runs."""

import errno
import json
import os
import re
import signal
import sys
import subprocess
import time

import pytest

from boxfs_helpers import (BOXFS, assert_server_file, data_of, errno_of,
                           run, wait_until, write_file)
from test_upload_sizes import CM, PS, SESS, small_sim

XATTR = "user.boxfs.status"

# argv: path size. Declares the size, writes data_of(size, 7), says
# "written", closes when stdin closes.
WRITER = """
import os, sys
sys.path.insert(0, %r)
from helpers import data_of
path, n = sys.argv[1], int(sys.argv[2])
data = data_of(n, 7)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.posix_fallocate(fd, 0, n)
off = 0
while off < n:
    off += os.write(fd, data[off:off + 256 * 1024])
print("written", flush=True)
sys.stdin.read()
os.close(fd)
""" % os.path.dirname(os.path.abspath(__file__))


def status_json(m):
    return json.loads(os.getxattr(m.path, XATTR))


def status_text(m, *extra):
    r = run(BOXFS, "status", str(m.path), *extra, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def counters_line(text):
    m = re.search(r"counters: uploaded .* \((\d+) bytes\), parts (\d+), "
                  r"retries (\d+), re-sends (\d+), commits (\d+), "
                  r"errors (\d+)", text)
    assert m, text
    keys = ("bytes", "parts", "retries", "resends", "commits", "errors")
    return dict(zip(keys, map(int, m.groups())))


@pytest.mark.boxfs_timeout(180)
def test_status_while_a_large_upload_runs(boxsim_factory, boxfs_factory):
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    before = counters_line(status_text(m))
    assert before["commits"] == 0 and before["parts"] == 0, before
    n = 6 * PS + 777
    data = data_of(n, 7)  # what WRITER writes
    # each part PUT takes 2 s (4 in parallel): slow enough to observe
    sim.add_fault("kind=delay,ms=2000,count=0,method=PUT,path=%s/*" % SESS)
    path = m.path / "big.bin"
    # The writer is another process: a fork of this one (to run `boxfs
    # status`) would inherit the fd, and its close would flush and commit.
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert w.stdout.readline().strip() == "written"

        # parts go up while the file is open: some but not all are done
        def partial():
            fl = status_json(m)["in_flight"]
            return fl and 0 < fl[0]["parts_done"] < fl[0]["parts_total"]
        wait_until(partial, timeout=30, what="upload in flight")
        text = status_text(m)
        js = status_json(m)
        up = js["in_flight"][0]
        assert up["name"] == "big.bin", js
        assert up["total"] == n and up["parts_total"] == 7, js
        # parts stay listed until close, even when all are up (slow host)
        assert up["bytes"] == min(up["parts_done"] * PS, n), js
        assert up["rate"] > 0, js
        assert "uploading: 1" in text, text
        row = re.search(r"big\.bin\n\s+\[[#.]+\]\s+\d+%\s+(.+?) / (.+?)"
                        r"\s+parts (\d+)/7\s+(.+?)/s\s+ETA (\d+s|-)", text)
        assert row, text
        assert 1 <= int(row.group(3)) <= 7, text
        assert row.group(2) == "6.0 MiB", text
    finally:
        w.stdin.close()
        assert w.wait(timeout=60) == 0
    sim.clear_faults()
    assert_server_file(sim.client, "big.bin", data)
    # after close: gone from the lists, counters grew
    js = status_json(m)
    assert js["in_flight"] == [] and js["queued"] == [], js
    assert js["failed"] == [], js
    after = counters_line(status_text(m))
    assert after["commits"] == before["commits"] + 1, after
    assert after["parts"] == before["parts"] + 7, after
    assert after["bytes"] == before["bytes"] + n, after
    assert after["errors"] == 0 and after["resends"] == 0, after
    assert js["counters"]["bytes_uploaded"] == after["bytes"], js
    assert js["auth"], js


def test_failed_upload_listed_with_reason(sim, mnt):
    sim.add_fault("kind=status,status=403,count=0,method=POST,"
                  "path=/api/2.0/files/content")
    got = errno_of(write_file, mnt.path / "denied.txt", b"no")
    assert got == errno.EACCES, errno.errorcode.get(got, got)
    sim.clear_faults()
    js = status_json(mnt)
    assert [(f["name"], f["reason"]) for f in js["failed"]] == \
        [("denied.txt", "access denied")], js
    assert js["in_flight"] == [], js
    text = status_text(mnt)
    assert "failed: 1" in text, text
    assert re.search(r"denied\.txt\s+2 B\s+failed: access denied", text), text
    c = counters_line(text)
    assert c["errors"] == 1 and c["commits"] == 0, c
    # a good upload afterwards is counted and the failure stays listed
    write_file(mnt.path / "fine.txt", b"yes")
    assert_server_file(sim.client, "fine.txt", b"yes")
    c = counters_line(status_text(mnt))
    assert c["commits"] == 1 and c["bytes"] == 3, c


@pytest.mark.boxfs_timeout(180)
def test_resend_counted(boxsim_factory, boxfs_factory):
    """A rewrite of a part already sent drops the session and re-sends the
    file: the re-sends counter says so. (The first part is held back until
    close, so the rewrite goes into the second.)"""
    sim = small_sim(boxsim_factory)
    m = boxfs_factory(sim, "chunked_min=%d" % CM)
    n = 3 * PS + 10
    data = bytearray(data_of(n, 4))
    fd = os.open(m.path / "rw", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, n)
        os.write(fd, bytes(data))
        wait_until(lambda: status_json(m)["in_flight"] and
                   status_json(m)["in_flight"][0]["parts_done"] == 3,
                   timeout=30, what="all parts but the first up")
        os.pwrite(fd, b"Z" * 100, PS + 50)
        data[PS + 50:PS + 150] = b"Z" * 100
    finally:
        os.close(fd)
    assert_server_file(sim.client, "rw", bytes(data))
    c = status_json(m)["counters"]
    assert c["resends"] == 1 and c["commits"] == 1, c
    assert c["parts"] == 7 and c["bytes_uploaded"] == 2 * n - PS, c


def test_watch_refreshes_until_interrupted(sim, mnt):
    p = subprocess.Popen([BOXFS, "status", str(mnt.path), "--watch"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(2.6)
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert out.count("counters:") >= 2, out


def test_not_a_boxfs_mount(tmp_path):
    r = run(BOXFS, "status", str(tmp_path), check=False)
    assert r.returncode == 1, r
    assert "not a boxfs mount" in r.stderr, r.stderr
    r = run(BOXFS, "status", str(tmp_path / "missing"), check=False)
    assert r.returncode == 1, r
    assert "No such file" in r.stderr, r.stderr
    r = run(BOXFS, "status", check=False)
    assert r.returncode == 2, r
    assert "usage" in r.stderr, r.stderr


def test_no_secret_in_status(sim, mnt):
    raw = os.getxattr(mnt.path, XATTR).decode()
    assert len(sim.token) >= 8 and sim.token not in raw, raw
    assert "Bearer" not in raw, raw
    assert json.loads(raw)["auth"] == "static token", raw
