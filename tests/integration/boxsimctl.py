"""Start and control a boxsim server for a test.

    sim = Boxsim(tmpdir, part_size=MiB, chunked_min=2 * MiB,
                 faults=("kind=status,status=503,method=PUT",))
    sim.base / sim.api / sim.upload / sim.token / sim.data_dir / sim.log_path
    sim.client                 -> BoxClient for this server
    sim.log(since=mark)        -> request log entries (list of dicts)
    sim.log_mark()             -> position to pass as `since`
    sim.add_fault(spec) -> id, sim.clear_faults(), sim.faults(), sim.stats()
    self_signed_cert(dir)      -> (cert, key) for tls=, or None
    sim.stop(), sim.kill(), sim.restart()

The binary is $BOXSIM (default <repo>/build/tests/boxsim/boxsim).  It is
started with --listen 127.0.0.1:PORT (0 the first time), --data, --log, and
its first stdout line is the base URL.  stderr goes to <tmp>/boxsim.stderr
(read it with .stderr_text()).
"""

import atexit
import json
import os
import pathlib
import select
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from boxapi import BoxClient

REPO = pathlib.Path(__file__).resolve().parents[2]
BOXSIM = os.environ.get("BOXSIM") or str(REPO / "build/tests/boxsim/boxsim")
START_TIMEOUT = 10
STOP_TIMEOUT = 5


_live = set()


@atexit.register
def _kill_leftovers():
    """A script or a crashed run that never called stop() must not leave
    servers behind."""
    for sim in list(_live):
        sim.kill()


def self_signed_cert(directory):
    """(cert, key) PEM paths of a fresh self-signed certificate for
    127.0.0.1 (for Boxsim(tls=...)); None when openssl cannot make one."""
    d = pathlib.Path(directory)
    key, cert = d / "key.pem", d / "cert.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, timeout=60)
    return None if r.returncode else (cert, key)


class BoxsimError(Exception):
    """boxsim did not start, or its control endpoint failed."""


class Boxsim:
    def __init__(self, workdir, part_size=None, chunked_min=None,
                 token="boxsim-token", faults=(), extra_args=(), tls=None,
                 data_dir=None):
        """tls: None or (cert_path, key_path).  workdir: a private directory
        for data, log and stderr."""
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = pathlib.Path(data_dir) if data_dir else \
            self.workdir / "data"
        self.log_path = self.workdir / "requests.log"
        self.stderr_path = self.workdir / "boxsim.stderr"
        self.token = token
        self.part_size = part_size
        self.chunked_min = chunked_min
        self.fault_args = tuple(faults)
        self.extra_args = tuple(extra_args)
        self.tls = tls
        self.proc = None
        self.port = 0
        self.base = self.api = self.upload = None
        self._client = None
        self.start()

    # --- process ---------------------------------------------------------

    def argv(self, port):
        a = [BOXSIM, "--listen", "127.0.0.1:%d" % port,
             "--data", str(self.data_dir), "--log", str(self.log_path),
             "--token", self.token]
        if self.part_size is not None:
            a += ["--part-size", str(self.part_size)]
        if self.chunked_min is not None:
            a += ["--chunked-min", str(self.chunked_min)]
        if self.tls:
            a += ["--tls-cert", str(self.tls[0]), "--tls-key",
                  str(self.tls[1])]
        for f in self.fault_args:
            a += ["--fault", f]
        a += list(self.extra_args)
        return a

    def start(self, port=None):
        if not os.access(BOXSIM, os.X_OK):
            raise BoxsimError("boxsim binary not found at %s (build it with "
                              "scripts/build, or set BOXSIM)" % BOXSIM)
        port = self.port if port is None else port
        self._log_size_at_start = self.log_mark()
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(port),
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err)
        finally:
            err.close()
        _live.add(self)
        line = self._first_line()
        if not line.startswith(("http://", "https://")):
            self.kill()
            raise BoxsimError("boxsim did not print its URL (got %r); "
                              "stderr:\n%s" % (line, self.stderr_text()))
        self._run_mark = self._log_size_at_start
        self.base = line.rstrip("/")
        self.port = int(self.base.rsplit(":", 1)[1])
        self.api = self.base + "/2.0"
        self.upload = self.base + "/api/2.0"
        self._client = None

    def _first_line(self):
        deadline = time.monotonic() + START_TIMEOUT
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise BoxsimError("boxsim printed no URL within %ss; "
                                  "stderr:\n%s" % (START_TIMEOUT,
                                                   self.stderr_text()))
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                rc = self.proc.wait()
                raise BoxsimError("boxsim exited (%s) before printing its "
                                  "URL; stderr:\n%s" % (rc,
                                                        self.stderr_text()))
            buf += chunk
        return buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_pipe()
        return self.proc.returncode

    def kill(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipe()
        return self.proc.returncode

    def _close_pipe(self):
        _live.discard(self)
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def restart(self):
        """Stops and starts again on the same data dir and, if it is still
        free, the same port (with the same command-line faults)."""
        self.stop()
        try:
            self.start(self.port)
        except BoxsimError:
            self.start(0)

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    # --- clients and control -------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = self.client_with(self.token)
        return self._client

    def client_with(self, token):
        """A BoxClient with another token (None: no Authorization)."""
        return BoxClient(self.api, self.upload, token,
                         cafile=self.tls[0] if self.tls else None)

    def _control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        ctx = ssl.create_default_context(cafile=str(self.tls[0])) \
            if self.tls else None
        try:
            with urllib.request.urlopen(req, timeout=10,
                                        context=ctx) as resp:
                st, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            st, raw = e.code, e.read()
        return st, raw

    def add_fault(self, spec):
        st, raw = self._control("POST", "/_sim/faults", {"spec": spec})
        if st != 201:
            raise BoxsimError("add_fault(%r): %s %r" % (spec, st, raw))
        return json.loads(raw)["id"]

    def clear_faults(self):
        st, raw = self._control("DELETE", "/_sim/faults")
        if st != 204:
            raise BoxsimError("clear_faults: %s %r" % (st, raw))

    def faults(self):
        st, raw = self._control("GET", "/_sim/faults")
        if st != 200:
            raise BoxsimError("faults: %s %r" % (st, raw))
        return json.loads(raw)["faults"]

    def stats(self):
        st, raw = self._control("GET", "/_sim/stats")
        if st != 200:
            raise BoxsimError("stats: %s %r" % (st, raw))
        return json.loads(raw)

    # --- request log ------------------------------------------------------

    def log_mark(self):
        """A position in the request log; entries after it: log(since=)."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _settle_log(self, timeout=1.0):
        """boxsim writes a log line when a request completes, which is just
        after the client got its answer: wait (briefly) until this run's
        log holds as many lines as the server has counted requests."""
        if not self.alive():
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                want = self.stats()["requests"]
            except (BoxsimError, OSError, ValueError, KeyError):
                return
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(self._run_mark)
                    have = f.read().count(b"\n")
            except FileNotFoundError:
                have = 0
            if have >= want or time.monotonic() > deadline:
                return
            time.sleep(0.02)

    def log(self, since=0, settle=True):
        """Parsed request log entries written after `since` (a log_mark),
        in the order the requests arrived (field "t", microseconds).  boxsim
        writes a line when a request completes, so under load the lines of
        two back-to-back requests can land in the file swapped.  A line
        still being written (no newline yet) is left out."""
        if settle:
            self._settle_log()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                raw = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in raw.split(b"\n")[:-1]:
            if line.strip():
                out.append(json.loads(line))
        out.sort(key=lambda e: e.get("t", 0))  # stable: ties keep file order
        return out
