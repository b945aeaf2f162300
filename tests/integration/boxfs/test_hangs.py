"""Hangs: with the server hung (SIGSTOP) or gone (SIGKILL), every call that
blocks on the network - close of a written file, fsync, readdir of an
uncached folder, read of an uncached range, statfs, mkdir - returns an error
within the configured timeout; unmount works afterwards and the daemon
exits; no process is left in D state.

Each call runs in its own child process that prepares (opens, writes)
while the server is healthy, says "ready", and makes the call when told,
after the server was stopped; the children run their calls at the same
time, so one test per server state covers all six calls in one `timeout`.

The bound (http.h): no retry starts that could end more than `timeout`
after the first attempt if the server stalls for connect_timeout +
io_timeout, and once a request got no answer at all, no request starts
that could end after that same point, so a call that makes several
requests in a row (a lookup then the mkdir, a commit then its abort) fails
within one `timeout`.  libcurl measures "no progress" as an average over
its last ~5 s, so an attempt that sent a body before the stall ends up to
~8 s after io_timeout (measured: 10 s with io_timeout=2): LIMIT = timeout
+ 10 s (2 s of slack).  The defaults (connect 10 s, io 30 s,
timeout 60 s) give one attempt per request against a hung server (30 s)
and retries worth ~20 s against a refused one (backoff 0.5, 1, 2, 4, 8 s with
+-50 % jitter; no retry starts after 60 - 10 - 30 - 6 = 14 s).
"""

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from boxfs_helpers import (assert_server_file, data_of, errno_of,
                           is_fuse_mount, wait_until, write_file)

MiB = 1 << 20
CONNECT, IO, TIMEOUT = 1, 2, 4
LIMIT = TIMEOUT + 10
OPTS = ("connect_timeout=%d" % CONNECT, "io_timeout=%d" % IO,
        "timeout=%d" % TIMEOUT, "retries=5", "dir_ttl=0", "attr_ttl=0",
        "part_parallel=2", "chunked_min=1M")

# One blocking call, prepared first.  argv: op, mount path.
CHILD = r"""
import errno, json, os, sys, time
op, mnt = sys.argv[1], sys.argv[2]
fd = None
if op in ("close", "fsync"):
    fd = os.open(os.path.join(mnt, op + ".bin"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, os.urandom(1 << 20))
elif op == "close_streamed":
    fd = os.open(os.path.join(mnt, "streamed.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.posix_fallocate(fd, 0, 5 << 20)
    os.write(fd, os.urandom(2 << 20))
elif op == "read":
    fd = os.open(os.path.join(mnt, "d", "big.bin"), os.O_RDONLY)
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
err = 0
try:
    if op in ("close", "close_streamed"):
        f, fd = fd, None
        if op == "close_streamed":
            os.write(f, os.urandom(3 << 20))
        os.close(f)
    elif op == "fsync":
        os.fsync(fd)
    elif op == "read":
        os.pread(fd, 65536, 3 << 20)
    elif op == "readdir":
        os.listdir(os.path.join(mnt, "d"))
    elif op == "statfs":
        os.statvfs(mnt)
    elif op == "mkdir":
        os.mkdir(os.path.join(mnt, "newdir"))
except OSError as e:
    err = e.errno
print(json.dumps({"op": op, "errno": err, "took": time.monotonic() - t0}),
      flush=True)
if fd is not None:
    try:
        os.close(fd)
    except OSError:
        pass
"""

OPS = ("close", "close_streamed", "fsync", "read", "readdir", "statfs",
       "mkdir")


def proc_state(pid):
    """The state letter of /proc/PID/stat, or None once it is gone."""
    return proc_state_path(pathlib.Path("/proc/%d/stat" % pid))


def all_stopped(pid):
    tasks = pathlib.Path("/proc/%d/task" % pid)
    return all(proc_state_path(t / "stat") in ("T", "t")
               for t in tasks.iterdir())


def proc_state_path(p):
    try:
        s = p.read_text()
    except OSError:
        return None
    return s[s.rindex(")") + 2]


def prepare(m, sim):
    d = sim.client.create_folder("0", "d")
    sim.client.upload(d["id"], "big.bin", data_of(4 * MiB, 7))
    os.listdir(m.path)          # the root is known; "d" is looked up
    kids = []
    for op in OPS:
        p = subprocess.Popen([sys.executable, "-c", CHILD, op, str(m.path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        kids.append(p)
    for p in kids:
        line = p.stdout.readline()
        assert line.strip() == "ready", (p.args[3], line, p.poll())
    return kids


def run_calls(kids):
    """Start every call; wait for each (LIMIT + a margin), watching the
    children's states.  Returns {op: result} and the D states seen."""
    for p in kids:
        p.stdin.write("go\n")
        p.stdin.flush()
    deadline = time.monotonic() + LIMIT + 10
    dstates = []
    while time.monotonic() < deadline and any(p.poll() is None
                                              for p in kids):
        for p in kids:
            if proc_state(p.pid) == "D":
                dstates.append(p.args[3])
        time.sleep(0.2)
    out = {}
    for p in kids:
        if p.poll() is None:
            st = proc_state(p.pid)
            p.kill()
            p.wait()
            out[p.args[3]] = {"errno": None, "took": None, "state": st}
            continue
        line = p.stdout.read().strip().splitlines()
        out[p.args[3]] = json.loads(line[-1]) if line else {
            "errno": None, "took": None, "exit": p.returncode}
    return out, dstates


def check(results, dstates):
    print("\n".join("%-15s %s" % (k, v) for k, v in sorted(results.items())))
    for op, r in results.items():
        assert r["took"] is not None, "%s did not return: %r" % (op, r)
        assert r["took"] <= LIMIT, "%s took %.1f s (limit %d)" % (
            op, r["took"], LIMIT)
        assert r["errno"] not in (errno.ENOTCONN, errno.ECONNABORTED), \
            "%s: the daemon is gone (%r)" % (op, r)
        if op != "statfs":
            # statfs may answer from what it last saw; everything else
            # needs the server and must say it failed
            assert r["errno"] != 0, "%s succeeded without a server" % op
    assert not dstates, "children in D state: %r" % sorted(set(dstates))


def unmount_works(m):
    r = subprocess.run(["fusermount3", "-u", str(m.path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert m.wait_exit(30) == 0, m.stderr_text()[-3000:]
    assert not is_fuse_mount(m.path)


@pytest.mark.boxfs_timeout(90)
def test_hung_server(boxsim_factory, boxfs_factory):
    sim = boxsim_factory(part_size=MiB, chunked_min=MiB)
    m = boxfs_factory(sim, *OPTS)
    kids = prepare(m, sim)
    os.kill(sim.proc.pid, signal.SIGSTOP)
    # kill() returns before every thread has stopped: a request could
    # still be answered meanwhile
    wait_until(lambda: all_stopped(sim.proc.pid), timeout=10,
               what="boxsim stopped")
    try:
        results, dstates = run_calls(kids)
        check(results, dstates)
    finally:
        os.kill(sim.proc.pid, signal.SIGCONT)
    # the server is back: the mount works again without a remount
    wait_until(lambda: errno_of(os.listdir, m.path / "d") == 0, timeout=15,
               what="a listing once the server is back")
    data = data_of(3 * MiB + 5, 9)
    write_file(m.path / "after.bin", data)
    assert_server_file(sim.client, "after.bin", data)
    unmount_works(m)
    # nothing of the failed files became visible
    for name in ("close.bin", "fsync.bin", "streamed.bin"):
        assert sim.client.find(name) is None, name


@pytest.mark.boxfs_timeout(90)
def test_gone_server(boxsim_factory, boxfs_factory):
    sim = boxsim_factory(part_size=MiB, chunked_min=MiB)
    m = boxfs_factory(sim, *OPTS)
    kids = prepare(m, sim)
    sim.kill()
    results, dstates = run_calls(kids)
    check(results, dstates)
    unmount_works(m)
    sim.start(0)
    for name in ("close.bin", "fsync.bin", "streamed.bin"):
        assert sim.client.find(name) is None, name

