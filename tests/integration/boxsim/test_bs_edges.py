"""boxsim: edge cases of names, ranges, fields and concurrency."""

import threading

import pytest

from bs_helpers import (CM, PS, call, commit, data_of, err, ok, put_part,
                        session, sha1_hex, simple_upload)


def test_name_length_counts_characters(boxsim):
    """Box's 255 limit is in characters: 255 two-byte characters fit."""
    c = boxsim.client
    ok(call(c, "POST", boxsim.api + "/folders",
            {"name": "é" * 255, "parent": {"id": "0"}}), 201)
    err(call(c, "POST", boxsim.api + "/folders",
             {"name": "é" * 256, "parent": {"id": "0"}}), 400,
        "item_name_too_long")


def test_name_with_nul_is_refused_not_truncated(boxsim):
    c = boxsim.client
    st, _, body = call(c, "POST", boxsim.api + "/folders",
                       {"name": "abc\x00def", "parent": {"id": "0"}})
    assert st == 400, (st, body)
    assert c.list("0") == []


def test_rename_case_only(boxsim):
    """Renaming "a.txt" to "A.txt" is not a clash with itself."""
    c = boxsim.client
    f = c.upload("0", "a.txt", b"a")
    r = ok(call(c, "PUT", boxsim.api + "/files/" + f["id"],
                {"name": "A.txt"}), 200)
    assert r["name"] == "A.txt"
    d = c.create_folder("0", "dir")
    r = ok(call(c, "PUT", boxsim.api + "/folders/" + d["id"],
                {"name": "DIR"}), 200)
    assert r["name"] == "DIR"
    assert sorted(c.tree()) == ["A.txt", "DIR"]


def test_move_onto_taken_name_in_other_folder(boxsim):
    c = boxsim.client
    d = c.create_folder("0", "d")
    c.upload(d["id"], "X", b"in d")
    f = c.upload("0", "x", b"in root")
    err(call(c, "PUT", boxsim.api + "/files/" + f["id"],
             {"parent": {"id": d["id"]}}), 409, "item_name_in_use")
    r = ok(call(c, "PUT", boxsim.api + "/files/" + f["id"],
                {"parent": {"id": d["id"]}, "name": "y"}), 200)
    assert r["parent"]["id"] == d["id"] and r["name"] == "y"


def test_empty_file(boxsim):
    c = boxsim.client
    f = ok(simple_upload(c, "0", "empty", b""), 201, "Files")["entries"][0]
    assert f["size"] == 0 and f["sha1"] == sha1_hex(b"")
    assert c.download(f["id"]) == b""


def test_suffix_range(boxsim):
    c = boxsim.client
    data = data_of(5000, 2)
    f = c.upload("0", "s.bin", data)
    url = boxsim.api + "/files/%s/content" % f["id"]
    st, h, body = c.request("GET", url, headers={"Range": "bytes=-500"})
    if st == 302:
        st, h, body = c.request("GET", h["Location"],
                                headers={"Range": "bytes=-500"})
    assert st == 206 and body == data[-500:]


def test_offset_past_the_end(boxsim):
    c = boxsim.client
    c.upload("0", "a", b"a")
    page = ok(call(c, "GET", boxsim.api + "/folders/0/items?offset=50"), 200,
              "Items")
    assert page["entries"] == [] and page["total_count"] == 1


def test_fields_on_get_file(boxsim):
    c = boxsim.client
    f = c.upload("0", "a", b"abc")
    r = ok(call(c, "GET", boxsim.api + "/files/%s?fields=name,size" %
                f["id"]), 200)
    assert r["name"] == "a" and r["size"] == 3
    assert r["type"] == "file" and r["id"] == f["id"]
    assert "path_collection" not in r and "created_by" not in r


def test_item_status_field(boxsim):
    c = boxsim.client
    c.upload("0", "a", b"abc")
    page = ok(call(c, "GET", boxsim.api + "/folders/0/items?fields="
                   "item_status"), 200, "Items")
    assert page["entries"][0]["item_status"] == "active"


def test_parallel_parts(boxsim_factory):
    """Parts PUT from several threads at once, then one commit."""
    sim = boxsim_factory(part_size=PS, chunked_min=CM)
    c = sim.client
    data = data_of(6 * PS + 77, 3)
    s = ok(session(c, "0", "par.bin", len(data)), 201)
    results = {}

    def send(off):
        results[off] = put_part(c, s["id"], off, data[off:off + PS],
                                len(data))

    ts = [threading.Thread(target=send, args=(o,))
          for o in range(0, len(data), PS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert sorted(results) == list(range(0, len(data), PS))
    parts = [ok(results[o], 200)["part"] for o in sorted(results)]
    f = ok(commit(c, s["id"], parts, data), 201)["entries"][0]
    assert f["sha1"] == sha1_hex(data)
    assert c.download(f["id"]) == data


def test_session_in_deleted_folder(boxsim_factory):
    """The target folder vanished before the commit: refused, no file."""
    sim = boxsim_factory(part_size=PS, chunked_min=CM)
    c = sim.client
    d = c.create_folder("0", "tmp")
    data = data_of(CM, 4)
    s = ok(session(c, d["id"], "f.bin", len(data)), 201)
    parts = [ok(put_part(c, s["id"], o, data[o:o + PS], len(data)),
                200)["part"] for o in range(0, len(data), PS)]
    assert call(c, "DELETE", sim.api + "/folders/%s?recursive=true" %
                d["id"])[0] == 204
    st, _, body = commit(c, s["id"], parts, data)
    assert st in (404, 409, 410), (st, body)
    assert c.tree() == {}


def test_version_session_with_rename(boxsim_factory):
    sim = boxsim_factory(part_size=PS, chunked_min=CM)
    c = sim.client
    f = c.upload("0", "old.bin", b"old")
    c.upload("0", "taken.bin", b"t")
    url = sim.upload + "/files/%s/upload_sessions" % f["id"]
    err(call(c, "POST", url, {"file_size": CM, "file_name": "TAKEN.bin"}),
        409, "item_name_in_use")
    data = data_of(CM, 5)
    s = ok(call(c, "POST", url, {"file_size": CM, "file_name": "new.bin"}),
           201)
    parts = [ok(put_part(c, s["id"], o, data[o:o + PS], len(data)),
                200)["part"] for o in range(0, len(data), PS)]
    r = ok(commit(c, s["id"], parts, data), 201)["entries"][0]
    assert r["id"] == f["id"] and r["name"] == "new.bin"


@pytest.mark.parametrize("bad", ['{"parts": "x"}', '{"parts": [1, 2]}',
                                 '{"parts": [{"part_id": 5}]}', "nope"])
def test_commit_malformed_bodies(boxsim_factory, bad):
    sim = boxsim_factory(part_size=PS, chunked_min=CM)
    c = sim.client
    data = data_of(CM, 6)
    s = ok(session(c, "0", "m.bin", len(data)), 201)
    for o in range(0, len(data), PS):
        ok(put_part(c, s["id"], o, data[o:o + PS], len(data)), 200)
    from bs_helpers import sha1_b64
    st, _, body = call(c, "POST", sim.upload + "/files/upload_sessions/%s/"
                       "commit" % s["id"], bad.encode(),
                       {"Content-Type": "application/json",
                        "Digest": "sha=" + sha1_b64(data)})
    assert st == 400, (st, body)
    assert c.list("0") == []
    assert sim.alive()


def test_multipart_file_part_name_is_free(boxsim):
    """rclone names the file part "contents", Node "content": any part with
    a filename after the attributes is the file."""
    c = boxsim.client
    for i, field in enumerate(("contents", "content")):
        data = data_of(3000 + i, i)
        att = b'{"name": "f%d", "parent": {"id": "0"}}' % i
        body = (b"--XyZ\r\nContent-Disposition: form-data; "
                b"name=\"attributes\"\r\n\r\n" + att + b"\r\n--XyZ\r\n"
                b"Content-Disposition: form-data; name=\"" + field.encode() +
                b"\"; filename=\"x\"\r\nContent-Type: application/octet-"
                b"stream\r\n\r\n" + data + b"\r\n--XyZ--\r\n")
        r = ok(call(c, "POST", boxsim.upload + "/files/content", body,
                    {"Content-Type": "multipart/form-data; boundary=XyZ"}),
               201)
        assert r["entries"][0]["sha1"] == sha1_hex(data)
        assert c.download(r["entries"][0]["id"]) == data


def test_multipart_without_attributes_or_file(boxsim):
    c = boxsim.client
    only_file = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                 b"filename=\"x\"\r\n\r\nabc\r\n--XyZ--\r\n")
    only_att = (b"--XyZ\r\nContent-Disposition: form-data; "
                b"name=\"attributes\"\r\n\r\n"
                b'{"name": "a", "parent": {"id": "0"}}\r\n--XyZ--\r\n')
    for body in (only_file, only_att, b"not multipart at all"):
        st, _, r = call(c, "POST", boxsim.upload + "/files/content", body,
                        {"Content-Type": "multipart/form-data; "
                         "boundary=XyZ"})
        assert st == 400, (body[:40], st, r)
    assert c.list("0") == []


def test_conditional_requests(boxsim):
    c = boxsim.client
    f = c.upload("0", "a", b"abc")
    url = boxsim.api + "/files/" + f["id"]
    etag = c.get_file(f["id"])["etag"]
    st, _, body = call(c, "GET", url, None, {"If-None-Match": etag})
    assert st == 304 and body is None
    assert call(c, "GET", url, None, {"If-None-Match": "x" + etag})[0] == 200
    err(call(c, "PUT", url, {"name": "b"}, {"If-Match": "x" + etag}), 412,
        "precondition_failed")
    err(call(c, "DELETE", url, None, {"If-Match": "x" + etag}), 412,
        "precondition_failed")
    assert c.get_file(f["id"])["name"] == "a"
    ok(call(c, "PUT", url, {"name": "b"}, {"If-Match": etag}), 200)


def test_ids_of_the_wrong_kind(boxsim):
    """A file id where a folder is expected (and back) is not found."""
    c = boxsim.client
    f = c.upload("0", "a", b"abc")
    d = c.create_folder("0", "d")
    assert call(c, "GET", boxsim.api + "/folders/%s/items" % f["id"])[0] \
        == 404
    assert call(c, "GET", boxsim.api + "/files/" + d["id"])[0] == 404
    assert simple_upload(c, f["id"], "z", b"z")[0] == 404
    assert call(c, "POST", boxsim.api + "/folders",
                {"name": "q", "parent": {"id": f["id"]}})[0] == 404
    assert call(c, "PUT", boxsim.api + "/folders/" + d["id"],
                {"parent": {"id": f["id"]}})[0] == 404
    assert sorted(c.tree()) == ["a", "d"]


def test_size_over_max_upload_size(boxsim):
    """Box refuses a file over the account's max_upload_size (users/me)
    with 403 file_size_limit_exceeded (box-api.md 2.5), at preflight and
    at session creation."""
    c = boxsim.client
    me = ok(call(c, "GET", boxsim.api + "/users/me"), 200)
    over = me["max_upload_size"] + 1
    err(session(c, "0", "huge", over), 403, "file_size_limit_exceeded")
    err(call(c, "OPTIONS", boxsim.api + "/files/content",
             {"name": "huge", "size": over, "parent": {"id": "0"}}), 403,
        "file_size_limit_exceeded")
    ok(session(c, "0", "huge", me["max_upload_size"]), 201)
