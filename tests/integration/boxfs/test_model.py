"""Model test: random sequences of create/open/write/pwrite/truncate/rename/
unlink/read/close run on the mount and, identically, on a local directory
(the model); after every close both trees must agree (listing, sizes,
bytes), every read must return the same bytes and every call the same
error; at the end Box itself must hold what the model holds.

Seeded and reproducible: each seed runs in its own folder of one mount; a
failure prints the seed and the ops so far.  CI runs SEEDS (4) seeds of OPS
(100) ops; BOXFS_MODEL_SEEDS=N runs N seeds, BOXFS_MODEL_SEED=S just seed S,
BOXFS_MODEL_OPS=N longer sequences.

Small parts (1 MiB, chunked_min 2 MiB) and offsets up to 3 MiB make the
sequences cross part boundaries and use upload sessions.  Restrictions,
where boxfs documents that it differs from a local disk (SEMANTICS.md):
at most one descriptor per file, and rename/unlink only of files that are
not open.
"""

import errno
import os
import random

import pytest

from boxfs_helpers import sha1

MiB = 1 << 20
NAMES = ("a", "b", "c", "d", "e")
SEEDS = int(os.environ.get("BOXFS_MODEL_SEEDS") or 4)
OPS = int(os.environ.get("BOXFS_MODEL_OPS") or 100)
MAXOFF = 3 * MiB


def seeds():
    if os.environ.get("BOXFS_MODEL_SEED"):
        return [int(os.environ["BOXFS_MODEL_SEED"])]
    base = random.SystemRandom().randrange(1 << 30)
    return [base + i for i in range(SEEDS)]


def both(fn, *args):
    """fn on the mount and on the model: (result or None, errno)."""
    try:
        return fn(*args), 0
    except OSError as e:
        return None, e.errno


class Run:
    def __init__(self, seed, mdir, ldir):
        self.seed = seed
        self.rnd = random.Random(seed)
        self.m, self.l = mdir, ldir
        self.open = {}          # name -> (fd on mount, fd on model)
        self.ops = []

    def close_all(self):
        """After a failure: no descriptor may keep the mount busy."""
        for fm, fl in self.open.values():
            for fd in (fm, fl):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.open.clear()

    def fail(self, msg):
        self.close_all()
        pytest.fail("model seed %d (BOXFS_MODEL_SEED=%d), after %d ops: %s\n"
                    "ops:\n  %s" % (self.seed, self.seed, len(self.ops), msg,
                                    "\n  ".join(self.ops)), pytrace=False)

    def same(self, what, fm, fl, *args):
        rm, em = both(fm, *args[0])
        rl, el = both(fl, *args[1])
        if em != el:
            self.fail("%s: mount %s, model %s" % (
                what, errno.errorcode.get(em, em) if em else "ok",
                errno.errorcode.get(el, el) if el else "ok"))
        if rm != rl and not what.startswith(("create", "open")):
            self.fail("%s: mount returned %r, model %r" % (
                what, rm if not isinstance(rm, bytes) else
                "%d bytes sha1 %s" % (len(rm), sha1(rm)),
                rl if not isinstance(rl, bytes) else
                "%d bytes sha1 %s" % (len(rl), sha1(rl))))
        return rm, rl

    def files(self):
        return sorted(os.listdir(self.l))

    def step(self):
        r = self.rnd
        existing = self.files()
        closed = [n for n in existing if n not in self.open]
        choices = ["create"] * 3
        if closed:
            choices += ["open"] * 2 + ["truncate_path", "rename", "unlink"]
        if self.open:
            choices += ["write"] * 4 + ["pwrite"] * 4 + ["ftruncate"] + \
                ["read"] * 2 + ["close"] * 4
        op = r.choice(choices)
        if op in ("create", "open"):
            pool = [n for n in NAMES if n not in self.open] if op == \
                "create" else closed
            if not pool:
                return
            name = r.choice(pool)
            flags = os.O_RDWR | os.O_CREAT
            if op == "create" or r.random() < 0.3:
                flags |= os.O_TRUNC
            self.ops.append("%s %s%s" % (op, name, " O_TRUNC"
                                         if flags & os.O_TRUNC else ""))
            fm, fl = self.same(op + " " + name, os.open, os.open,
                               (self.m / name, flags, 0o644),
                               (self.l / name, flags, 0o644))
            if fm is not None:
                self.open[name] = (fm, fl)
        elif op in ("write", "pwrite", "ftruncate", "read", "close"):
            name = r.choice(sorted(self.open))
            fm, fl = self.open[name]
            if op == "write":
                n = r.choice((1, 100, 4096, 65536, 300000))
                data = r.randbytes(n)
                self.ops.append("write %s %d" % (name, n))
                self.same("write", os.write, os.write, (fm, data), (fl, data))
            elif op == "pwrite":
                off = r.randrange(MAXOFF)
                data = r.randbytes(r.choice((1, 4096, 200000, MiB + 3)))
                self.ops.append("pwrite %s @%d %d" % (name, off, len(data)))
                self.same("pwrite", os.pwrite, os.pwrite, (fm, data, off),
                          (fl, data, off))
            elif op == "ftruncate":
                size = r.choice((0, r.randrange(MAXOFF)))
                self.ops.append("ftruncate %s %d" % (name, size))
                self.same("ftruncate", os.ftruncate, os.ftruncate,
                          (fm, size), (fl, size))
            elif op == "read":
                off = r.randrange(MAXOFF)
                n = r.choice((1, 4096, 100000, MiB))
                self.ops.append("pread %s @%d %d" % (name, off, n))
                self.same("pread", os.pread, os.pread, (fm, n, off),
                          (fl, n, off))
            else:
                self.ops.append("close %s" % name)
                del self.open[name]
                self.same("close " + name, os.close, os.close, (fm,), (fl,))
                self.compare()
        elif op == "truncate_path":
            name = r.choice(closed)
            size = r.choice((0, r.randrange(MAXOFF)))
            self.ops.append("truncate %s %d" % (name, size))
            self.same("truncate", os.truncate, os.truncate,
                      (self.m / name, size), (self.l / name, size))
        elif op == "rename":
            src = r.choice(closed)
            pool = [n for n in NAMES if n != src and n not in self.open]
            if not pool:
                return
            dst = r.choice(pool)
            self.ops.append("rename %s %s" % (src, dst))
            self.same("rename", os.rename, os.rename,
                      (self.m / src, self.m / dst),
                      (self.l / src, self.l / dst))
        elif op == "unlink":
            name = r.choice(closed)
            self.ops.append("unlink %s" % name)
            self.same("unlink", os.unlink, os.unlink, (self.m / name,),
                      (self.l / name,))

    def compare(self):
        lm, ll = sorted(os.listdir(self.m)), self.files()
        if lm != ll:
            self.fail("listing: mount %r, model %r" % (lm, ll))
        for n in ll:
            sm, sl = os.stat(self.m / n).st_size, os.stat(self.l / n).st_size
            if sm != sl:
                self.fail("size of %s: mount %d, model %d" % (n, sm, sl))
            if n in self.open:
                continue
            bm = (self.m / n).read_bytes()
            bl = (self.l / n).read_bytes()
            if bm != bl:
                first = next((i for i, (x, y) in enumerate(zip(bm, bl))
                              if x != y), min(len(bm), len(bl)))
                self.fail("bytes of %s differ from offset %d" % (n, first))

    def finish(self):
        for name in sorted(self.open):
            fm, fl = self.open.pop(name)
            self.ops.append("close %s" % name)
            self.same("close " + name, os.close, os.close, (fm,), (fl,))
        self.compare()


@pytest.mark.boxfs_timeout(240)
def test_model(boxsim_factory, boxfs_factory, tmp_path):
    sim = boxsim_factory(part_size=MiB, chunked_min=2 * MiB)
    m = boxfs_factory(sim, "attr_ttl=0", "chunked_min=2M")
    for seed in seeds():
        print("model seed %d" % seed)
        mdir = m.path / ("s%d" % seed)
        ldir = tmp_path / ("model%d" % seed)
        mdir.mkdir()
        ldir.mkdir()
        run = Run(seed, mdir, ldir)
        try:
            for _ in range(OPS):
                run.step()
            run.finish()
        finally:
            run.close_all()
        # what Box stores is what the model holds
        folder = sim.client.find("s%d" % seed)
        boxed = {e["name"]: e for e in sim.client.list(folder["id"])}
        if sorted(boxed) != run.files():
            run.fail("Box lists %r, model %r" % (sorted(boxed), run.files()))
        for n in run.files():
            want = sha1((ldir / n).read_bytes())
            if boxed[n]["sha1"] != want:
                run.fail("Box has %s with sha1 %s, model %s" % (
                    n, boxed[n]["sha1"], want))
