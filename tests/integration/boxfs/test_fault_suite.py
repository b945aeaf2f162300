"""The fault suite: many files of random sizes written by several processes
at once while boxsim injects every kind of fault it has; nothing may be
lost or corrupt.

Files: N (env BOXFS_FAULT_FILES, default 200) with sizes log-uniform between
0 and MAX (env BOXFS_FAULT_MAX, default 16M; some are exactly 0), seeded
(env BOXFS_FAULT_SEED, else random; the seed is printed), written by 6
processes at once, each file one of: plain writes (burst at close), a
size declared first with posix_fallocate (streamed parts), or a rewrite
(O_TRUNC) of a file that was already in Box.

Faults, spread over the run by `nth` (seeded): 500/502/503 on parts,
simple uploads and session creation, 429 with Retry-After, connection
resets in the middle of parts, slow answers, 202 on commits, 401s (and
access tokens that really expire: the mount uses an OAuth2 token file
against boxsim's /oauth2/token with --token-ttl 4, so it refreshes as it
goes), and upload sessions that expire (410).

Every file ends committed with the right SHA-1, or its close() failed and
nothing of it is in Box (a new file is absent, a rewritten one still has
its old content).  boxsim's log has no 416 (the client never sends
overlapping parts).  The test prints its figures - faults fired per kind
(from boxsim's log), files, committed, errors reported, lost, corrupt -
and asserts lost == corrupt == 0.

CI size: the defaults (about 11 s on the normal build).  Larger:
    BOXFS_FAULT_FILES=1000 BOXFS_FAULT_MAX=100M pytest-3 -s \
        tests/integration/boxfs/test_fault_suite.py
(parts are then Box's 8 MiB instead of 1 MiB; a few minutes).
"""

import collections
import errno
import json
import math
import multiprocessing
import os
import random
import time

import pytest

from boxfs_helpers import data_of, sha1

MiB = 1 << 20
CID, SECRET, RT0 = "fault-client", "fault-secret", "fault-refresh-0"
UP = "/api/2.0/files"
PARTS = "method=PUT,path=%s/upload_sessions/*" % UP
SIMPLE = "method=POST,path=%s/*content" % UP
CREATE = "method=POST,path=%s/*upload_sessions" % UP
COMMIT = "method=POST,path=%s/upload_sessions/*/commit" % UP
WRITERS = 6


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": MiB, "G": 1 << 30}.get(s[-1:], 1)
    return int(s.rstrip("KMG")) * mult


FILES = int(os.environ.get("BOXFS_FAULT_FILES") or 200)
MAX = parse_size(os.environ.get("BOXFS_FAULT_MAX") or "16M")
PART = MiB if MAX <= 16 * MiB else None     # None: boxsim's 8 MiB
CM = 2 * MiB


def plan(seed):
    """[(name, size, mode, old_size)] for FILES files."""
    rnd = random.Random(seed)
    out = []
    for i in range(FILES):
        if rnd.random() < 0.05:
            size = 0
        else:
            size = int(math.exp(rnd.uniform(0, math.log(MAX))))
        mode = rnd.choice(("plain", "plain", "fallocate", "fallocate",
                           "rewrite"))
        old = int(math.exp(rnd.uniform(0, math.log(MAX)))) \
            if mode == "rewrite" else None
        out.append(("f%04d-%s.bin" % (i, mode), min(size, MAX), mode, old))
    return out


def content(seed, i, size):
    return data_of(size, seed * 100003 + i)


def write_one(args):
    """In a writer process: write one file; returns (name, errno of the
    first failing call or 0, which call)."""
    path, name, size, mode, dseed = args
    data = data_of(size, dseed)
    rnd = random.Random(dseed)
    fd = None
    where = "open"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(os.path.join(path, name), flags, 0o644)
        if mode == "fallocate" and size:
            where = "fallocate"
            os.posix_fallocate(fd, 0, size)
        where = "write"
        off = 0
        while off < size:
            n = rnd.choice((4096, 65536, 131072, 1 << 20, 3 * 65536 + 7))
            off += os.write(fd, data[off:off + n])
        where = "close"
        f, fd = fd, None
        os.close(f)
    except OSError as e:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        return name, e.errno, where
    return name, 0, ""


def fault_specs(rnd, files):
    """The faults, spread over the expected number of requests of each
    kind."""
    part = PART or 8 * MiB
    nparts = sum((s + part - 1) // part for _, s, _, _ in files if s >= CM)
    nsimple = sum(1 for _, s, _, _ in files if s < CM)
    nsess = sum(1 for _, s, _, _ in files if s >= CM)

    def nths(total, k):
        total = max(total, 1)
        return sorted(rnd.randint(1, total) for _ in range(k))

    reset_at = rnd.randint(1, part // 2)
    table = (   # (fault without nth, requests it applies to, how many)
        ("kind=status,status=500," + PARTS, nparts, 3),
        ("kind=status,status=502," + SIMPLE, nsimple, 2),
        ("kind=status,status=503,retry_after=1," + CREATE, nsess, 2),
        ("kind=status,status=429,retry_after=1," + PARTS, nparts, 2),
        ("kind=status,status=429,retry_after=1," + SIMPLE, nsimple, 2),
        ("kind=reset,after=%d,%s" % (reset_at, PARTS), nparts, 3),
        ("kind=reset,after=0," + SIMPLE, nsimple, 1),
        ("kind=delay,ms=1500,count=3," + PARTS, nparts, 2),
        ("kind=delay,ms=1000," + COMMIT, nsess, 1),
        ("kind=commit202,retry_after=1,count=2," + COMMIT, nsess, 2),
        ("kind=status,status=401,method=PUT", nparts + nsimple, 3),
        ("kind=status,status=401," + SIMPLE, nsimple, 2),
        ("kind=expire," + PARTS, nparts, 2),
    )
    specs = []
    for spec, total, k in table:
        specs += ["%s,nth=%d" % (spec, n) for n in nths(total, k)]
    return specs


@pytest.mark.boxfs_timeout(300 if FILES * MAX <= 200 * 16 * MiB else 3600)
def test_fault_suite(boxsim_factory, boxfs_factory, tmp_path):
    seed = int(os.environ.get("BOXFS_FAULT_SEED") or
               random.SystemRandom().randrange(1 << 30))
    print("\nfault suite: seed %d (BOXFS_FAULT_SEED=%d), %d files up to %d "
          "bytes" % (seed, seed, FILES, MAX))
    rnd = random.Random(seed)
    sim = boxsim_factory(part_size=PART, chunked_min=CM, extra_args=(
        "--client-id", CID, "--client-secret", SECRET,
        "--refresh-token", RT0, "--token-ttl", "4"))
    tf = tmp_path / "oauth.json"
    tf.write_text(json.dumps({"client_id": CID, "client_secret": SECRET,
                              "refresh_token": RT0}))
    tf.chmod(0o600)
    files = plan(seed)
    old = {}
    for i, (name, size, mode, osize) in enumerate(files):
        if mode == "rewrite":
            data = content(seed, i + FILES, osize)
            sim.client.upload("0", name, data)
            old[name] = sha1(data)
    m = boxfs_factory(sim, "token_file=%s" % tf, "chunked_min=%d" % CM,
                      "retries=5", "part_parallel=3",
                      env={"BOX_TOKEN": None})
    mark = sim.log_mark()
    for spec in fault_specs(rnd, files):
        sim.add_fault(spec)
    jobs = [(str(m.path), name, size, mode, seed * 100003 + i)
            for i, (name, size, mode, _) in enumerate(files)]
    t0 = time.monotonic()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(WRITERS) as pool:
        results = pool.map(write_one, jobs, chunksize=1)
    took = time.monotonic() - t0
    sim.clear_faults()

    log = sim.log(since=mark)
    fired = collections.Counter()
    for e in log:
        if e.get("fault"):
            kind = e["fault"]
            if kind == "status":
                kind = "status %s" % e["status"]
            fired[kind] += 1
    on_server = {e["name"]: e for e in sim.client.list("0")}
    shas = {name: sha1(content(seed, i, size))
            for i, (name, size, _, _) in enumerate(files)}
    committed = errors = lost = corrupt = 0
    problems = []
    for (name, size, mode, _), (rname, err, where) in zip(files, results):
        assert name == rname
        want = shas[name]
        e = on_server.get(name)
        if err == 0:
            if e is None:
                lost += 1
                problems.append("%s (%d B, %s): close OK, not in Box"
                                % (name, size, mode))
            elif e["sha1"] != want or int(e["size"]) != size:
                corrupt += 1
                problems.append("%s (%d B, %s): close OK, Box has %s B sha1 "
                                "%s" % (name, size, mode, e["size"],
                                        e["sha1"]))
            else:
                committed += 1
        else:
            errors += 1
            problems_ok = (e is None) if mode != "rewrite" else \
                (e is not None and e["sha1"] == old[name])
            print("  error: %s (%d B, %s): %s at %s" % (
                name, size, mode, errno.errorcode.get(err, err), where))
            print("    " + "\n    ".join(
                ln for ln in m.stderr_text().splitlines() if name in ln))
            if not problems_ok:
                corrupt += 1
                problems.append("%s: %s failed (%s) but Box has %r" % (
                    name, where, errno.errorcode.get(err, err), e))
    # what the mount shows agrees with Box for what was committed
    for name, size, _, _ in files:
        e = on_server.get(name)
        if e is not None and e["sha1"] == shas[name]:
            st = os.stat(m.path / name)
            assert st.st_size == size, (name, st.st_size, size)
    for name, size, _, _ in rnd.sample(files, min(10, len(files))):
        e = on_server.get(name)
        if e is not None and e["sha1"] == shas[name]:
            assert sha1((m.path / name).read_bytes()) == e["sha1"], name
    overlaps = [e for e in log if e["status"] == 416]
    print("fault suite: %.1f s; faults fired: %s (total %d)" % (
        took, ", ".join("%s %d" % kv for kv in sorted(fired.items())),
        sum(fired.values())))
    print("fault suite: files %d, committed %d, errors reported %d, lost %d, "
          "corrupt %d, 416s %d" % (len(files), committed, errors, lost,
                                   corrupt, len(overlaps)))
    assert lost == 0 and corrupt == 0, "\n".join(problems)
    assert not overlaps, overlaps[:3]
    assert sum(fired.values()) >= 10, fired
    for kind in ("reset", "commit202", "status 401", "expire", "status 429"):
        assert fired[kind] > 0 or FILES < 50, (kind, fired)
    # errors are allowed (reported, nothing visible) but must be rare
    assert errors <= max(2, len(files) // 20), errors



def test_request_after_token_refresh_is_clean(boxsim_factory, boxfs_factory,
                                              tmp_path):
    """A 401 makes the daemon refresh the token (a form POST) on the same
    curl handle and send the request again; that second DELETE once carried
    the form's Content-Length without a body and hung until io_timeout.
    With io_timeout=3 and no retries, such a hang fails the unlink."""
    sim = boxsim_factory(extra_args=("--client-id", CID, "--client-secret",
                                     SECRET, "--refresh-token", RT0))
    tf = tmp_path / "oauth.json"
    tf.write_text(json.dumps({"client_id": CID, "client_secret": SECRET,
                              "refresh_token": RT0}))
    tf.chmod(0o600)
    sim.client.upload("0", "x", b"x" * 100)
    m = boxfs_factory(sim, "token_file=%s" % tf, "io_timeout=3", "retries=0",
                      env={"BOX_TOKEN": None})
    assert os.listdir(m.path) == ["x"]
    mark = sim.log_mark()
    sim.add_fault("kind=status,status=401,method=DELETE")
    os.unlink(m.path / "x")
    assert sim.client.find("x") is None
    dels = [e for e in sim.log(since=mark) if e["method"] == "DELETE"]
    assert [e["status"] for e in dels] == [401, 204], dels
    assert all(e["bytes"] == 0 for e in dels), dels
