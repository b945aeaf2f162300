"""Fixtures for tests that mount boxfs against boxsim.

Contract (shared with every boxfs test author):

  boxfs_factory(sim, *opts, env=None, cache_dir=None, wait=True) -> Mount
      Starts $BOXFS (default <repo>/build/fs/boxfs) as
          boxfs -f -o api_url=..,upload_url=..,cache_dir=.. <opts> MNT
      with BOX_TOKEN=sim.token in the environment (never in argv).
      `opts` are argv words; a word that does not start with "-" and does not
      follow "-o" is taken as a mount option, so ("attr_ttl=0",) and
      ("-o", "attr_ttl=0") mean the same.  `env` adds to / overrides the
      environment; a value of None removes the variable (env={"BOX_TOKEN":
      None} mounts without a token).  With wait=True the call returns once MNT
      is a mount point (15 s, longer under sanitizers) and raises MountError
      if the daemon exits first; with wait=False it returns at once (for tests
      of failing mounts: use Mount.wait_exit()).

  Mount: .path (pathlib.Path), .proc (Popen), .stderr_text(), .unmount(),
      .wait_exit(timeout) -> returncode, .stderr_path, .argv, .env.

  mnt  = boxfs_factory(sim) with the default options;  sim = that boxsim.

Safety nets, per test:
  * a watchdog: when a test runs past its deadline (120 s by default,
    @pytest.mark.boxfs_timeout(SECONDS) to change it; doubled when
    BOXFS_SANITIZED=1) every daemon the test started is SIGKILLed, so a
    syscall blocked on the mount returns ENOTCONN instead of hanging the
    suite, and the test fails with "watchdog";
  * teardown always unmounts (lazily and with SIGKILL if it must) and fails
    the test if a daemon died from a signal, exited non-zero after a normal
    unmount, did not exit after unmount, or printed a sanitizer report;
  * the daemon's stderr goes to a file and is attached to the report of a
    failed test.

Running the daemon under a tool (scripts/valgrind does this):
  BOXFS_WRAPPER="valgrind --tool=memcheck --error-exitcode=99 ..." prefixes
  the daemon's argv with those words (shlex-split); Mount.argv shows the
  full command.  Every deadline above is then stretched by
  BOXFS_WRAPPER_SLOW (default 8; valgrind runs the daemon 10-50x slower, but
  most of the time goes to the network and the server), on top of the
  sanitizer factor; a valgrind "ERROR SUMMARY: N" with N > 0 in the
  daemon's stderr fails the test like a sanitizer report.  scripts/valgrind
  also sets BOXFS_SANITIZED=1 so tests skip their RSS checks.
"""

import importlib.util
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest

# helpers.py is imported by the tests as `boxfs_helpers`: a plain
# `import helpers` could collide with another test directory's helpers.py.
_spec = importlib.util.spec_from_file_location(
    "boxfs_helpers", pathlib.Path(__file__).with_name("helpers.py"))
boxfs_helpers = importlib.util.module_from_spec(_spec)
sys.modules["boxfs_helpers"] = boxfs_helpers
_spec.loader.exec_module(boxfs_helpers)
from boxfs_helpers import is_fuse_mount, mount_entry  # noqa: E402

BOXFS = boxfs_helpers.BOXFS
SANITIZED = boxfs_helpers.SANITIZED
WRAPPER = boxfs_helpers.WRAPPER
# Sanitized builds are several times slower: stretch every deadline.
SLOW = 2.0 if SANITIZED else 1.0
if WRAPPER:
    SLOW *= float(os.environ.get("BOXFS_WRAPPER_SLOW") or 8)

DEFAULT_DEADLINE = 120
MOUNT_TIMEOUT = 15
UNMOUNT_TIMEOUT = 20

SANITIZER_RE = re.compile(
    r"runtime error:|ERROR: AddressSanitizer|LeakSanitizer|"
    r"ERROR: ThreadSanitizer|UndefinedBehaviorSanitizer|"
    r"ERROR SUMMARY: [1-9]")


class MountError(Exception):
    """The daemon did not come up (it exited, or the mount never appeared)."""


def _fusermount(path, lazy=False):
    args = ["fusermount3", "-uz" if lazy else "-u", str(path)]
    try:
        r = subprocess.run(args, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=10)
        return r.returncode == 0, r.stderr.decode(errors="replace").strip()
    except subprocess.TimeoutExpired:
        return False, "fusermount3 timed out"


def _abort_connection(path):
    """Abort the FUSE connection through fusectl when it is mounted: ends
    requests even when the daemon is stuck in an uninterruptible state."""
    ent = mount_entry(path)
    if not ent or not ent[1].startswith("fuse"):
        return
    minor = ent[0].split(":")[1]
    abort = pathlib.Path("/sys/fs/fuse/connections") / minor / "abort"
    try:
        abort.write_text("1")
    except OSError:
        pass


class Mount:
    """One boxfs daemon and its mount point."""

    def __init__(self, path, argv, env, stderr_path, stdout_path, owner):
        self.path = pathlib.Path(path)
        self.argv = argv
        self.env = env
        self.stderr_path = pathlib.Path(stderr_path)
        self.stdout_path = pathlib.Path(stdout_path)
        self._owner = owner
        self.mounted = False      # the mount appeared at least once
        self.killed_by_us = None  # reason, when we had to kill the daemon
        self.unmounted = False
        self.problems = []        # found at unmount; teardown reports them
        self._errf = open(self.stderr_path, "wb")
        self._outf = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=self._outf,
            stderr=self._errf, start_new_session=True)

    def __repr__(self):
        return "<Mount %s pid=%d>" % (self.path, self.proc.pid)

    def stderr_text(self):
        try:
            return self.stderr_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            return self.stdout_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    @property
    def returncode(self):
        return self.proc.poll()

    def wait_exit(self, timeout=15):
        """Wait for the daemon to exit; returns its exit status
        (negative: killed by that signal).  Raises TimeoutError."""
        try:
            return self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise TimeoutError("boxfs (pid %d) still running after %ss"
                               % (self.proc.pid, timeout)) from None

    def wait_mounted(self, timeout=MOUNT_TIMEOUT):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if is_fuse_mount(self.path):
                self.mounted = True
                return
            if self.proc.poll() is not None:
                raise MountError(
                    "boxfs exited with status %s before mounting; stderr:\n%s"
                    % (self.proc.returncode, self.stderr_text()))
            time.sleep(0.05)
        raise MountError("%s is not a mount after %ss; stderr:\n%s"
                         % (self.path, timeout, self.stderr_text()))

    def kill(self, reason):
        """SIGKILL the daemon (the watchdog's tool); the kernel then fails
        every request pending on the mount with ENOTCONN."""
        if self.proc.poll() is None:
            self.killed_by_us = self.killed_by_us or reason
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _abort_connection(self.path)

    def unmount(self, timeout=UNMOUNT_TIMEOUT):
        """Unmount and wait for the daemon to exit.  Escalates to a lazy
        unmount and SIGTERM/SIGKILL; what went wrong is recorded in
        .problems (teardown turns that into a test failure) and returned."""
        if self.unmounted:
            return self.problems
        self.unmounted = True
        if is_fuse_mount(self.path):
            ok, err = _fusermount(self.path)
            if not ok:
                # Busy (a leaked fd or cwd): detach it; the daemon would
                # only exit once the last user goes, so do not wait long.
                self.problems.append("fusermount3 -u failed: %s" % err)
                _fusermount(self.path, lazy=True)
                timeout = 3
        try:
            self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            if self.proc.poll() is None and self.killed_by_us is None:
                self.problems.append(
                    "daemon did not exit within %ss of the unmount" % timeout)
            self.killed_by_us = self.killed_by_us or "SIGTERM after unmount"
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill("did not exit after unmount")
                self.proc.wait(timeout=10)
        if is_fuse_mount(self.path):
            _fusermount(self.path, lazy=True)
        self._errf.close()
        self._outf.close()
        self._check_exit()
        return self.problems

    def _check_exit(self):
        rc = self.proc.returncode
        if self.killed_by_us is None and rc is not None:
            if rc < 0:
                self.problems.append(
                    "daemon died from signal %s" % signal.Signals(-rc).name)
            elif rc != 0 and self.mounted:
                self.problems.append(
                    "daemon exited with status %d after unmount" % rc)
        text = self.stderr_text()
        m = SANITIZER_RE.search(text)
        if m:
            self.problems.append("sanitizer report in daemon stderr: %r"
                                 % text[max(0, m.start() - 200):m.end() + 400])


class _Watchdog:
    """Kills the test's daemons when the test overruns its deadline."""

    def __init__(self, seconds, mounts):
        self.seconds = seconds
        self.mounts = mounts
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self):
        self.fired = True
        for m in list(self.mounts):
            m.kill("watchdog: test exceeded %ss" % self.seconds)

    def cancel(self):
        self._timer.cancel()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "boxfs_timeout(seconds): per-test deadline after which "
        "the boxfs watchdog SIGKILLs the test's daemons (default %d)"
        % DEFAULT_DEADLINE)
    config.addinivalue_line(
        "markers", "boxfs_watchdog_expected: the test provokes a hang on "
        "purpose; teardown fails if the watchdog did NOT fire")


def _deadline(item):
    m = item.get_closest_marker("boxfs_timeout")
    secs = m.args[0] if m and m.args else DEFAULT_DEADLINE
    return secs * SLOW


def pytest_collection_modifyitems(config, items):
    # Keep pytest-timeout (the last-resort net, pytest.ini) behind the
    # watchdog so a slow-but-allowed test is not cut short by it.
    here = pathlib.Path(__file__).parent
    for item in items:
        if here not in pathlib.Path(str(item.path)).parents:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(int(_deadline(item) + 90)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    mounts = getattr(item, "_boxfs_mounts", None)
    if not mounts or not rep.failed:
        return
    for m in mounts:
        rep.sections.append((
            "boxfs stderr (%s, pid %d, exit %s)"
            % (m.path.name, m.proc.pid, m.proc.poll()),
            m.stderr_text()[-20000:] or "(empty)"))
        rep.sections.append(("boxfs argv", shlex.join(m.argv)))


def _norm_opts(opts):
    """argv words; bare 'key=val' words become '-o key=val'."""
    out, prev = [], None
    for o in opts:
        o = str(o)
        if not o.startswith("-") and prev != "-o":
            out += ["-o", o]
        else:
            out.append(o)
        prev = o
    return out


@pytest.fixture
def boxfs_factory(request, tmp_path, boxsim_factory):
    # Requesting boxsim_factory makes its servers outlive our mounts at
    # teardown (fixtures are finalized in reverse order).
    del boxsim_factory
    mounts = []
    request.node._boxfs_mounts = mounts
    dog = _Watchdog(_deadline(request.node), mounts)
    counter = [0]

    def factory(sim, *opts, env=None, cache_dir=None, wait=True):
        if not os.access(BOXFS, os.X_OK):
            pytest.fail("no boxfs binary at %s (scripts/build normal, or set "
                        "BOXFS)" % BOXFS, pytrace=False)
        counter[0] += 1
        n = counter[0]
        mp = tmp_path / ("mnt%d" % n if n > 1 else "mnt")
        mp.mkdir()
        if cache_dir is None:
            cache_dir = tmp_path / ("cache%d" % n)
            cache_dir.mkdir(mode=0o700)
        o = "api_url=%s,upload_url=%s,cache_dir=%s" % (sim.api, sim.upload,
                                                      cache_dir)
        argv = WRAPPER + [BOXFS, "-f", "-o", o] + _norm_opts(opts) + [str(mp)]
        e = dict(os.environ)
        e["BOX_TOKEN"] = sim.token
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
        m = Mount(mp, argv, e, tmp_path / ("boxfs%d.stderr" % n),
                  tmp_path / ("boxfs%d.stdout" % n), request.node)
        mounts.append(m)
        if wait:
            try:
                m.wait_mounted()
            except MountError:
                m.kill("mount failed")
                raise
        return m

    yield factory

    dog.cancel()
    problems = []
    for m in reversed(mounts):
        for p in m.unmount():
            problems.append("%s: %s" % (m.path.name, p))
    expected = request.node.get_closest_marker("boxfs_watchdog_expected")
    if expected:
        if not dog.fired:
            problems.insert(0, "the watchdog was expected to fire but did not")
        for m in mounts:
            # The watchdog's SIGKILL was the point of the test.
            m.problems = [p for p in m.problems if "signal" not in p]
    elif dog.fired:
        problems.insert(0, "watchdog: test exceeded its %ss deadline; its "
                        "daemons were killed" % dog.seconds)
    if problems:
        tails = "\n".join("--- %s stderr (tail):\n%s" % (m.path.name,
                                                         m.stderr_text()[-4000:])
                          for m in mounts)
        pytest.fail("boxfs teardown:\n  " + "\n  ".join(problems) + "\n"
                    + tails, pytrace=False)


@pytest.fixture
def sim(boxsim):
    """The boxsim that `mnt` is mounted on."""
    return boxsim


@pytest.fixture
def mnt(sim, boxfs_factory):
    """boxfs mounted on `sim` with the default options."""
    return boxfs_factory(sim)
