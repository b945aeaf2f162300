"""boxsim: fault injection (command line and control endpoint), request log,
stats."""

import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from bs_helpers import (CM, PS, call, commit, data_of, err, ok, put_part,
                        session, sha1_b64, sha1_hex, simple_upload)

ROOT = "/2.0/folders/0"


@pytest.fixture
def sim(boxsim_factory):
    return boxsim_factory(part_size=PS, chunked_min=CM)


def _get_root(sim):
    return call(sim.client, "GET", sim.api + "/folders/0")


def _raw(sim, method, path, body=b"", headers=None):
    """One request on its own connection -> (status, headers, body), or the
    exception the dropped connection raised."""
    u = urllib.parse.urlsplit(sim.base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    h = {"Authorization": "Bearer " + sim.token}
    h.update(headers or {})
    try:
        conn.request(method, path, body, h)
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    except (OSError, http.client.HTTPException) as e:
        return e
    finally:
        conn.close()


def test_status_fault_nth_count(sim):
    mark = sim.log_mark()
    fid = sim.add_fault("kind=status,status=500,method=GET,path=%s,nth=2,"
                        "count=2" % ROOT)
    assert isinstance(fid, int)
    sts = [_get_root(sim)[0] for _ in range(5)]
    assert sts == [200, 500, 500, 200, 200]
    log = [e for e in sim.log(since=mark) if e["path"] == ROOT]
    assert [e["status"] for e in log] == sts
    assert [e["fault"] for e in log] == [None, "status", "status", None,
                                         None]
    f = [x for x in sim.faults() if x["id"] == fid][0]
    assert f["hits"] == 2 and "status=500" in f["spec"]
    assert sim.stats()["faults_fired"] == 2
    # Other paths and methods were never matched.
    assert call(sim.client, "GET", sim.api + "/users/me")[0] == 200


@pytest.mark.parametrize("status,code", [(500, "internal_server_error"),
                                         (502, "bad_gateway"),
                                         (503, "unavailable"),
                                         (429, "rate_limit_exceeded")])
def test_status_fault_bodies(sim, status, code):
    sim.add_fault("kind=status,status=%d,retry_after=3,path=%s" %
                  (status, ROOT))
    st, h, body = _get_root(sim)
    assert st == status
    if status in (429, 503):
        assert h.get("Retry-After") == "3"
    assert body["type"] == "error" and body["status"] == status
    assert body["code"] == code, body
    assert _get_root(sim)[0] == 200


def test_status_401_fault_like_expired_token(sim):
    sim.add_fault("kind=status,status=401,path=%s" % ROOT)
    st, h, _ = _get_root(sim)
    assert st == 401
    assert 'error="invalid_token"' in (h.get("WWW-Authenticate") or "")
    assert _get_root(sim)[0] == 200


def test_faulted_request_not_processed(sim):
    c = sim.client
    sim.add_fault("kind=status,status=503,method=POST,"
                  "path=/api/2.0/files/content")
    st, _, _ = simple_upload(c, "0", "a.txt", b"abc")
    assert st == 503
    assert c.list("0") == []
    ok(simple_upload(c, "0", "a.txt", b"abc"), 201)
    sim.add_fault("kind=status,status=500,method=POST,path=/2.0/folders")
    st, _, _ = call(c, "POST", sim.api + "/folders",
                    {"name": "d", "parent": {"id": "0"}})
    assert st == 500
    assert [e["name"] for e in c.list("0")] == ["a.txt"]


def test_forever_and_clear(sim):
    sim.add_fault("kind=status,status=503,count=0,path=%s" % ROOT)
    assert [_get_root(sim)[0] for _ in range(4)] == [503] * 4
    sim.clear_faults()
    assert sim.faults() == []
    assert _get_root(sim)[0] == 200


def test_command_line_faults(boxsim_factory):
    sim = boxsim_factory(faults=(
        "kind=status,status=502,path=%s" % ROOT,
        "kind=status,status=429,retry_after=7,method=GET,path=/2.0/users/me",
    ))
    assert len(sim.faults()) == 2
    assert _get_root(sim)[0] == 502
    st, h, _ = call(sim.client, "GET", sim.api + "/users/me")
    assert st == 429 and h.get("Retry-After") == "7"
    assert _get_root(sim)[0] == 200


def test_control_endpoint(sim):
    base = sim.base + "/_sim/faults"

    def req(method, body=None):
        r = urllib.request.Request(base, method=method,
                                   data=None if body is None else
                                   json.dumps(body).encode())
        try:
            with urllib.request.urlopen(r, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    # No token needed on the control endpoint.
    st, body = req("POST", {"spec": "kind=delay,ms=1,path=/nowhere"})
    assert st == 201 and json.loads(body)["id"] >= 1
    st, body = req("GET")
    assert st == 200 and len(json.loads(body)["faults"]) == 1
    for bad in ({"spec": "kind=explode"}, {"spec": "status=500"},
                {"spec": "kind=status,nth=zero"}, {"nospec": 1}):
        st, _ = req("POST", bad)
        assert st == 400, bad
    st, body = req("DELETE")
    assert st == 204
    assert sim.faults() == []
    s = sim.stats()
    assert set(s) >= {"requests", "faults_fired", "sessions_open",
                      "bytes_received"}
    # /_sim requests are not API requests: not in the log, not counted.
    assert not [e for e in sim.log() if e["path"].startswith("/_sim")]


def test_delay(sim):
    sim.add_fault("kind=delay,ms=400,path=%s" % ROOT)
    t = time.monotonic()
    st, _, body = _get_root(sim)
    assert time.monotonic() - t >= 0.39
    assert st == 200 and body["id"] == "0"       # answered normally
    t = time.monotonic()
    assert _get_root(sim)[0] == 200
    assert time.monotonic() - t < 0.3


def test_reset_before_body(sim):
    c = sim.client
    data = data_of(2 * PS + 1, 1)
    s = ok(session(c, "0", "r.bin", len(data)), 201)
    sim.add_fault("kind=reset,method=PUT,path=/api/2.0/files/upload_"
                  "sessions/*")
    path = "/api/2.0/files/upload_sessions/" + s["id"]
    hdrs = {"Content-Range": "bytes 0-%d/%d" % (PS - 1, len(data)),
            "Digest": "sha=" + sha1_b64(data[:PS]),
            "Content-Type": "application/octet-stream"}
    r = _raw(sim, "PUT", path, data[:PS], hdrs)
    assert isinstance(r, Exception), "expected a dropped connection: %r" % (
        r[:2],)
    parts = ok(call(c, "GET", sim.base + path + "/parts"), 200)
    assert parts["entries"] == []
    ok(put_part(c, s["id"], 0, data[:PS], len(data)), 200)


def test_reset_mid_body(sim):
    c = sim.client
    data = data_of(2 * PS + 1, 2)
    s = ok(session(c, "0", "m.bin", len(data)), 201)
    mark = sim.log_mark()
    sim.add_fault("kind=reset,after=300000,method=PUT,"
                  "path=/api/2.0/files/upload_sessions/*")
    path = "/api/2.0/files/upload_sessions/" + s["id"]
    hdrs = {"Content-Range": "bytes 0-%d/%d" % (PS - 1, len(data)),
            "Digest": "sha=" + sha1_b64(data[:PS]),
            "Content-Type": "application/octet-stream"}
    r = _raw(sim, "PUT", path, data[:PS], hdrs)
    assert isinstance(r, Exception), "expected a dropped connection: %r" % (
        r[:2],)
    log = [e for e in sim.log(since=mark) if e["method"] == "PUT"]
    assert len(log) == 1 and log[0]["fault"] == "reset", log
    assert 300000 <= log[0]["bytes"] < PS, log
    # Nothing stored: the same part goes up again without an overlap.
    ok(put_part(c, s["id"], 0, data[:PS], len(data)), 200)
    ok(put_part(c, s["id"], PS, data[PS:2 * PS], len(data)), 200)
    ok(put_part(c, s["id"], 2 * PS, data[2 * PS:], len(data)), 200)


def test_commit202(sim):
    c = sim.client
    data = data_of(CM + 5, 3)
    s = ok(session(c, "0", "c.bin", len(data)), 201)
    parts = [ok(put_part(c, s["id"], o, data[o:o + PS], len(data)),
                200)["part"] for o in range(0, len(data), PS)]
    sim.add_fault("kind=commit202,count=2,retry_after=2")
    for _ in range(2):
        st, h, body = commit(c, s["id"], parts, data)
        assert st == 202 and body is None
        assert h.get("Retry-After") == "2"
        assert c.list("0") == []
    f = ok(commit(c, s["id"], parts, data), 201, "Files")["entries"][0]
    assert f["sha1"] == sha1_hex(data)


def test_commit202_only_hits_commits(sim):
    sim.add_fault("kind=commit202,count=0")
    assert _get_root(sim)[0] == 200
    ok(simple_upload(sim.client, "0", "x", b"y"), 201)


def test_expire(sim):
    c = sim.client
    data = data_of(2 * PS + 9, 4)
    s = ok(session(c, "0", "e.bin", len(data)), 201)
    p0 = ok(put_part(c, s["id"], 0, data[:PS], len(data)), 200)["part"]
    sim.add_fault("kind=expire,method=PUT,path=/api/2.0/files/upload_"
                  "sessions/*")
    err(put_part(c, s["id"], PS, data[PS:2 * PS], len(data)), 410,
        "session_expired")
    base = sim.upload + "/files/upload_sessions/" + s["id"]
    err(call(c, "GET", base), 410, "session_expired")
    err(put_part(c, s["id"], 2 * PS, data[2 * PS:], len(data)), 410,
        "session_expired")
    err(commit(c, s["id"], [p0], data), 410, "session_expired")
    assert c.list("0") == []
    # Another session is unaffected.
    s2 = ok(session(c, "0", "e.bin", len(data)), 201)
    ok(put_part(c, s2["id"], 0, data[:PS], len(data)), 200)


def test_request_log_fields(sim):
    c = sim.client
    data = data_of(2 * PS + 100, 5)
    mark = sim.log_mark()
    s = ok(session(c, "0", "l.bin", len(data)), 201)
    ok(put_part(c, s["id"], PS, data[PS:2 * PS], len(data)), 200)
    call(c, "GET", sim.api + "/folders/0/items?offset=0&limit=1000")
    log = sim.log(since=mark)
    assert [e["method"] for e in log] == ["POST", "PUT", "GET"]
    for e in log:
        assert set(e) >= {"t", "method", "path", "query", "status",
                          "content_range", "bytes", "fault"}, e
        assert abs(e["t"] - time.time()) < 60
        assert e["fault"] is None
    post, put, get = log
    assert post["path"] == "/api/2.0/files/upload_sessions"
    assert post["status"] == 201 and post["content_range"] is None
    assert post["bytes"] > 0
    assert put["path"] == "/api/2.0/files/upload_sessions/" + s["id"]
    assert put["content_range"] == "bytes %d-%d/%d" % (PS, 2 * PS - 1,
                                                      len(data))
    assert put["bytes"] == PS and put["status"] == 200
    assert get["path"] == "/2.0/folders/0/items"
    assert get["query"] == "offset=0&limit=1000"
    assert get["bytes"] == 0 and get["status"] == 200
    # The log never carries the token.
    assert sim.token not in sim.log_path.read_text()
    st = sim.stats()
    assert st["bytes_received"] >= PS
    assert st["sessions_open"] == 1


def test_parallel_connections(sim):
    """A delayed request does not block the others."""
    import threading
    sim.add_fault("kind=delay,ms=1500,path=/2.0/users/me")
    done = []
    t = threading.Thread(target=lambda: done.append(
        call(sim.client, "GET", sim.api + "/users/me")[0]))
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    assert _get_root(sim)[0] == 200
    assert time.monotonic() - t0 < 1.0
    t.join(10)
    assert done == [200]


def test_garbage_requests_do_not_kill_the_server(sim):
    u = urllib.parse.urlsplit(sim.base)
    for junk in (b"\x00\x01\x02garbage\r\n\r\n",
                 b"GET /2.0/folders/0 HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: -5\r\n\r\n",
                 b"PUT /api/2.0/files/upload_sessions/X HTTP/1.1\r\n"
                 b"Content-Length: 10\r\n\r\nab"):
        s = socket.create_connection((u.hostname, u.port), timeout=5)
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
    assert _get_root(sim)[0] == 200
    assert sim.alive()
