"""Fixtures shared by every integration test.

    boxsim            a Boxsim (boxsimctl.py) with the default options,
                      function scope, stopped at teardown
    boxsim_factory    boxsim_factory(**Boxsim kwargs) -> Boxsim; every server
                      it started is stopped at teardown
    sha1(bytes) -> hex digest

A server that died from a signal while the test ran, printed a sanitizer
report, or did not exit cleanly on SIGTERM makes the test fail at teardown.
"""

import hashlib
import os
import re
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from boxsimctl import Boxsim  # noqa: E402

SANITIZER_RE = re.compile(r"runtime error:|ERROR: AddressSanitizer|"
                          r"LeakSanitizer|UndefinedBehaviorSanitizer")


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def _check_server(sim, problems):
    rc = sim.proc.poll() if sim.proc else None
    if rc is not None and rc < 0 and rc != -signal.SIGKILL:
        problems.append("boxsim died from signal %d" % -rc)
    rc = sim.stop()
    err = sim.stderr_text()
    if SANITIZER_RE.search(err):
        problems.append("boxsim sanitizer report:\n" + err[-4000:])
    elif rc not in (None, 0, -signal.SIGTERM, -signal.SIGKILL):
        problems.append("boxsim exited with status %d on SIGTERM; stderr:\n"
                        "%s" % (rc, err[-2000:]))


@pytest.fixture
def boxsim_factory(tmp_path):
    started = []

    def make(**kw):
        sim = Boxsim(tmp_path / ("boxsim%d" % len(started)), **kw)
        started.append(sim)
        return sim

    yield make
    problems = []
    for sim in started:
        _check_server(sim, problems)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def boxsim(boxsim_factory):
    return boxsim_factory()
