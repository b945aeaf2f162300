"""boxsim: chunked upload sessions and their rules (box-api.md 2-4, 9)."""

import math

import pytest

from bs_helpers import (CM, PS, MiB, call, commit, data_of, err, ok,
                        put_part, session, sha1_b64, sha1_hex)


@pytest.fixture
def sim(boxsim_factory):
    return boxsim_factory(part_size=PS, chunked_min=CM)


def _up(sim, name, data, parent="0"):
    s = ok(session(sim.client, parent, name, len(data)), 201,
           "UploadSession")
    return s


def test_session_create(sim):
    c = sim.client
    size = 3 * PS + 17
    s = ok(session(c, "0", "big.bin", size), 201, "UploadSession")
    assert s["type"] == "upload_session"
    assert s["part_size"] == PS
    assert s["total_parts"] == math.ceil(size / PS) == 4
    assert s["num_parts_processed"] == 0
    assert len(s["id"]) >= 16
    ep = s["session_endpoints"]
    base = sim.upload + "/files/upload_sessions/" + s["id"]
    assert ep["upload_part"] == base and ep["status"] == base
    assert ep["abort"] == base
    assert ep["commit"] == base + "/commit"
    assert ep["list_parts"] == base + "/parts"
    got = ok(call(c, "GET", base), 200, "UploadSession")
    assert got["id"] == s["id"] and got["total_parts"] == 4


def test_session_create_rules(sim):
    c = sim.client
    url = sim.upload + "/files/upload_sessions"
    ok(session(c, "0", "exact", CM), 201, "UploadSession")
    err(session(c, "0", "small", CM - 1), 400, "file_size_too_small")
    err(call(c, "POST", url, {"folder_id": "0", "file_name": "n"}), 400,
        "missing_file_size")
    err(call(c, "POST", url, {"folder_id": "0", "file_name": "n",
                              "file_size": -5}), 400, "invalid_file_size")
    err(call(c, "POST", url, {"folder_id": "0", "file_name": "n",
                              "file_size": "big"}), 400, "invalid_file_size")
    err(call(c, "POST", url, {"file_size": CM, "file_name": "n"}), 400,
        "missing_destination")
    err(call(c, "POST", url, {"folder_id": "0", "file_size": CM}), 400,
        "missing_file_name")
    err(session(c, "9999999", "n", CM), 404, "not_found")
    c.upload("0", "Taken.bin", b"x")
    e = err(session(c, "0", "taken.BIN", CM), 409, "item_name_in_use")
    assert "conflicts" in e["context_info"]
    # Unknown keys are ignored (legacy Python sends file_id).
    ok(call(c, "POST", url, {"folder_id": "0", "file_size": CM,
                             "file_name": "extra", "file_id": "1"}), 201)


def test_full_chunked_upload(sim):
    c = sim.client
    data = data_of(3 * PS + 1000, 1)
    s = ok(session(c, "0", "f.bin", len(data)), 201, "UploadSession")
    parts = []
    # Any order is allowed: last part first.
    for off in sorted(range(0, len(data), PS), reverse=True):
        chunk = data[off:off + PS]
        r = ok(put_part(c, s["id"], off, chunk, len(data)), 200,
               "UploadedPart")
        p = r["part"]
        assert p["offset"] == off and p["size"] == len(chunk)
        assert p["sha1"] == sha1_hex(chunk)
        assert len(p["part_id"]) == 8
        parts.append(p)
    parts.sort(key=lambda p: p["offset"])
    st = ok(call(c, "GET", sim.upload + "/files/upload_sessions/" + s["id"]),
            200, "UploadSession")
    assert st["num_parts_processed"] == 4
    r = ok(commit(c, s["id"], parts, data,
                  {"content_modified_at": "2022-02-02T02:02:02Z"}), 201,
           "Files")
    f = r["entries"][0]
    assert f["sha1"] == sha1_hex(data) and f["size"] == len(data)
    full = c.get_file(f["id"])
    assert full["content_modified_at"].startswith("2022-02-02T02:02:02")
    assert c.download(f["id"]) == data
    # The session is gone after its commit.
    st, _, _ = call(c, "GET", sim.upload + "/files/upload_sessions/" +
                    s["id"])
    assert st in (404, 410), st


def test_digest_header_forms(sim):
    """sha= and SHA= (base64 SHA-1) are both accepted; a wrong digest is
    412 and nothing is stored."""
    c = sim.client
    data = data_of(2 * PS + 5, 2)
    s = _up(sim, "d.bin", data)
    p0 = data[:PS]
    err(put_part(c, s["id"], 0, p0, len(data),
                 digest="sha=" + sha1_b64(b"other")), 412,
        "precondition_failed")
    st, _, _ = put_part(c, s["id"], 0, p0, len(data), digest="md5=abcd")
    assert st in (400, 412), st
    r1 = ok(put_part(c, s["id"], 0, p0, len(data),
                     digest="SHA=" + sha1_b64(p0)), 200)
    r2 = ok(put_part(c, s["id"], PS, data[PS:2 * PS], len(data),
                     digest="sha=" + sha1_b64(data[PS:2 * PS])), 200)
    r3 = ok(put_part(c, s["id"], 2 * PS, data[2 * PS:], len(data)), 200)
    parts = ok(call(c, "GET", sim.upload + "/files/upload_sessions/%s/parts"
                    % s["id"]), 200, "UploadParts")
    assert [p["offset"] for p in parts["entries"]] == [0, PS, 2 * PS]
    ok(commit(c, s["id"], [r1["part"], r2["part"], r3["part"]], data), 201)
    assert c.download(c.find("d.bin")["id"]) == data


def test_content_range_rules(sim):
    c = sim.client
    total = 3 * PS + 10
    data = data_of(total, 3)
    s = _up(sim, "r.bin", data)
    sid = s["id"]

    def bad(first, chunk, crange=None, status=416):
        st, _, body = put_part(c, sid, first, chunk, total, crange=crange)
        assert st == status, (crange, st, body)

    # Misaligned start.
    bad(1, data[1:PS + 1])
    # Not part_size and not the last part.
    bad(0, data[:PS - 1])
    # Last part too long / beyond the end.
    bad(3 * PS, data[3 * PS:] + b"xx",
        crange="bytes %d-%d/%d" % (3 * PS, total + 1, total))
    # Total different from the session's file_size.
    bad(0, data[:PS], crange="bytes 0-%d/%d" % (PS - 1, total + 1))
    # Malformed syntax.
    for cr in ("bytes=0-%d/%d" % (PS - 1, total), "0-%d/%d" % (PS - 1, total),
               "bytes %d-0/%d" % (PS - 1, total), "bytes 0-%d/*" % (PS - 1),
               "bytes  0-%d/%d" % (PS - 1, total)):
        bad(0, data[:PS], crange=cr)
    # Body length different from the range.
    st, _, _ = put_part(c, sid, 0, data[:PS - 1], total,
                        crange="bytes 0-%d/%d" % (PS - 1, total))
    assert st in (400, 416), st
    # Nothing was stored by any of those.
    parts = ok(call(c, "GET", sim.upload + "/files/upload_sessions/%s/parts"
                    % sid), 200, "UploadParts")
    assert parts["entries"] == []
    # The right ones pass, the short last part included.
    for off in range(0, total, PS):
        ok(put_part(c, sid, off, data[off:off + PS], total), 200)


def test_overlap_refused(sim):
    c = sim.client
    data = data_of(2 * PS + 3, 4)
    s = _up(sim, "o.bin", data)
    first = ok(put_part(c, s["id"], 0, data[:PS], len(data)), 200)["part"]
    e = err(put_part(c, s["id"], 0, data[:PS], len(data)), 416,
            "range_overlaps_existing_part")
    cp = e["context_info"]["conflicting_part"]
    assert cp["offset"] == 0 and cp["size"] == PS
    assert cp["part_id"] == first["part_id"]
    assert cp["sha1"] == sha1_hex(data[:PS])
    parts = ok(call(c, "GET", sim.upload + "/files/upload_sessions/%s/parts"
                    % s["id"]), 200, "UploadParts")
    assert len(parts["entries"]) == 1


def test_length_required(sim):
    """A part PUT without Content-Length (chunked) is 411."""
    import http.client
    import urllib.parse
    data = data_of(2 * PS + 3, 4)
    s = _up(sim, "l.bin", data)
    u = urllib.parse.urlsplit(sim.upload)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("PUT", u.path + "/files/upload_sessions/" + s["id"],
                 iter([data[:PS]]),
                 {"Authorization": "Bearer " + sim.token,
                  "Content-Range": "bytes 0-%d/%d" % (PS - 1, len(data)),
                  "Digest": "sha=" + sha1_b64(data[:PS])},
                 encode_chunked=True)
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 411


def test_commit_rules(sim):
    c = sim.client
    data = data_of(2 * PS + 99, 5)
    s = _up(sim, "c.bin", data)
    parts = [ok(put_part(c, s["id"], o, data[o:o + PS], len(data)),
                200)["part"] for o in range(0, len(data), PS)]
    # Wrong whole-file digest.
    err(commit(c, s["id"], parts, data, digest="sha=" + sha1_b64(b"no")),
        400, "digest_mismatch")
    # A part missing from the list / an unknown part.
    err(commit(c, s["id"], parts[:2], data), 400, "parts_mismatch")
    fake = dict(parts[0], part_id="DEADBEEF")
    err(commit(c, s["id"], [fake] + parts[1:], data), 400, "parts_mismatch")
    # No Digest header at all.
    st, _, _ = call(c, "POST", sim.upload +
                    "/files/upload_sessions/%s/commit" % s["id"],
                    {"parts": parts})
    assert st == 400, st
    assert c.list("0") == []
    # Parts without sha1 (Java sends only part_id, offset, size) are fine.
    slim = [{k: p[k] for k in ("part_id", "offset", "size")} for p in parts]
    f = ok(commit(c, s["id"], slim, data), 201, "Files")["entries"][0]
    assert f["sha1"] == sha1_hex(data)
    assert c.download(f["id"]) == data


def test_commit_incomplete_session(sim):
    """Committing before every byte is there is refused."""
    c = sim.client
    data = data_of(2 * PS + 1, 6)
    s = _up(sim, "i.bin", data)
    p = ok(put_part(c, s["id"], 0, data[:PS], len(data)), 200)["part"]
    st, _, body = commit(c, s["id"], [p], data)
    assert st == 400, (st, body)
    assert c.list("0") == []


def test_list_parts_paging(sim):
    c = sim.client
    data = data_of(5 * PS, 7)
    s = _up(sim, "p.bin", data)
    for o in range(0, len(data), PS):
        ok(put_part(c, s["id"], o, data[o:o + PS], len(data)), 200)
    url = sim.upload + "/files/upload_sessions/%s/parts" % s["id"]
    a = ok(call(c, "GET", url + "?offset=0&limit=2"), 200, "UploadParts")
    b = ok(call(c, "GET", url + "?offset=2&limit=2"), 200, "UploadParts")
    z = ok(call(c, "GET", url + "?offset=4&limit=2"), 200, "UploadParts")
    assert [p["offset"] for p in a["entries"] + b["entries"] +
            z["entries"]] == [o for o in range(0, len(data), PS)]
    assert a["total_count"] == 5
    err(call(c, "GET", url + "?limit=abc"), 400, "invalid_limit")
    err(call(c, "GET", url + "?offset=-1"), 400, "invalid_offset")
    err(call(c, "GET", url + "?offset=10001"), 400, "invalid_offset")


def test_abort(sim):
    c = sim.client
    data = data_of(2 * PS + 1, 8)
    s = _up(sim, "a.bin", data)
    ok(put_part(c, s["id"], 0, data[:PS], len(data)), 200)
    url = sim.upload + "/files/upload_sessions/" + s["id"]
    st, _, body = call(c, "DELETE", url)
    assert st == 204 and body is None
    err(call(c, "GET", url), 404, "not_found")
    st, _, _ = put_part(c, s["id"], PS, data[PS:2 * PS], len(data))
    assert st == 404
    assert c.list("0") == []
    # The name can be used by a new session.
    ok(session(c, "0", "a.bin", len(data)), 201)


def test_bad_session_ids(sim):
    c = sim.client
    err(call(c, "GET", sim.upload + "/files/upload_sessions/" + "A" * 32),
        404, "not_found")
    st, _, _ = call(c, "GET", sim.upload + "/files/upload_sessions/bad$id")
    assert st in (400, 404), st


def test_new_version_session(sim):
    c = sim.client
    old = c.upload("0", "ver.bin", b"small old version")
    data = data_of(2 * PS + 7, 9)
    url = sim.upload + "/files/%s/upload_sessions" % old["id"]
    s = ok(call(c, "POST", url, {"file_size": len(data)}), 201,
           "UploadSession")
    parts = [ok(put_part(c, s["id"], o, data[o:o + PS], len(data)),
                200)["part"] for o in range(0, len(data), PS)]
    f = ok(commit(c, s["id"], parts, data), 201, "Files")["entries"][0]
    assert f["id"] == old["id"]
    assert c.get_file(old["id"])["sha1"] == sha1_hex(data)
    assert c.download(old["id"]) == data
    err(call(c, "POST", sim.upload + "/files/9191919/upload_sessions",
             {"file_size": len(data)}), 404, "not_found")
    err(call(c, "POST", url, {"file_size": CM - 1}), 400,
        "file_size_too_small")


def test_commit_name_taken_meanwhile(sim):
    """Another file took the name while the session was open: 409."""
    c = sim.client
    data = data_of(CM, 10)
    s = _up(sim, "race.bin", data)
    parts = [ok(put_part(c, s["id"], o, data[o:o + PS], len(data)),
                200)["part"] for o in range(0, len(data), PS)]
    c.upload("0", "RACE.bin", b"first")
    err(commit(c, s["id"], parts, data), 409, "item_name_in_use")
    assert c.tree() == {"RACE.bin": sha1_hex(b"first")}


def test_default_sizes(boxsim):
    """The real defaults: 20,000,000-byte minimum, 8 MiB parts."""
    c = boxsim.client
    err(session(c, "0", "x.bin", 19999999), 400, "file_size_too_small")
    data = data_of(20000000, 11)
    s = ok(session(c, "0", "x.bin", len(data)), 201, "UploadSession")
    assert s["part_size"] == 8 * MiB and s["total_parts"] == 3
    ps = s["part_size"]
    parts = [ok(put_part(c, s["id"], o, data[o:o + ps], len(data)),
                200)["part"] for o in range(0, len(data), ps)]
    f = ok(commit(c, s["id"], parts, data), 201, "Files")["entries"][0]
    assert f["size"] == 20000000 and f["sha1"] == sha1_hex(data)
    assert c.download(f["id"]) == data
    # Large sessions get larger parts, as on Box (never below 8 MiB).
    big = ok(session(c, "0", "huge.bin", 5 * 1024 ** 3), 201,
             "UploadSession")
    assert big["part_size"] >= 32 * MiB
    assert big["total_parts"] == math.ceil(5 * 1024 ** 3 / big["part_size"])
