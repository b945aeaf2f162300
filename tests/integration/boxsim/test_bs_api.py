"""boxsim: the file and folder endpoints, auth and name rules over HTTP.
Every rule: one request that must pass, one that must fail (status+code)."""

import http.client
import json
import urllib.parse

import pytest

from bs_helpers import (call, check_times, data_of, err, ok, sha1_hex,
                        simple_upload)
from boxapi import BoxClient


# --- auth -------------------------------------------------------------------

def test_bearer_token_required(boxsim):
    good = boxsim.client
    ok(call(good, "GET", boxsim.api + "/folders/0"), 200, "Folder--Full")
    for token in (None, "wrong-token", ""):
        c = BoxClient(boxsim.api, boxsim.upload, token)
        st, h, body = call(c, "GET", boxsim.api + "/folders/0")
        assert st == 401, (token, st, body)
        www = h.get("WWW-Authenticate") or ""
        assert www.startswith("Bearer ") and 'error="invalid_token"' in www, \
            www
    # The upload host checks it too, and nothing is stored.
    c = BoxClient(boxsim.api, boxsim.upload, "wrong-token")
    st, _, _ = simple_upload(c, "0", "x.txt", b"x")
    assert st == 401
    assert boxsim.client.list("0") == []


def test_custom_token(boxsim_factory):
    sim = boxsim_factory(token="s3cret-T")
    ok(call(sim.client, "GET", sim.api + "/users/me"), 200, "User--Full")
    c = BoxClient(sim.api, sim.upload, "boxsim-token")
    assert call(c, "GET", sim.api + "/users/me")[0] == 401


def test_users_me(boxsim):
    me = ok(call(boxsim.client, "GET", boxsim.api + "/users/me"), 200,
            "User--Full")
    assert me["type"] == "user"
    assert isinstance(me["space_amount"], int), me["space_amount"]
    assert isinstance(me["space_used"], int), me["space_used"]
    before = me["space_used"]
    boxsim.client.upload("0", "f", data_of(1000))
    me = ok(call(boxsim.client, "GET", boxsim.api + "/users/me"), 200)
    assert me["space_used"] == before + 1000


# --- folders -----------------------------------------------------------------

def test_get_folder(boxsim):
    c = boxsim.client
    root = ok(call(c, "GET", boxsim.api + "/folders/0"), 200, "Folder--Full")
    assert root["id"] == "0" and root["type"] == "folder"
    d = c.create_folder("0", "sub")
    got = ok(call(c, "GET", boxsim.api + "/folders/" + d["id"]), 200,
             "Folder--Full")
    assert got["name"] == "sub" and got["parent"]["id"] == "0"
    assert [p["id"] for p in got["path_collection"]["entries"]] == ["0"]
    check_times(got)
    err(call(c, "GET", boxsim.api + "/folders/987654"), 404, "not_found")
    st, _, _ = call(c, "GET", boxsim.api + "/folders/abc")
    assert st in (404, 405), st


def test_create_folder_and_conflicts(boxsim):
    c = boxsim.client
    url = boxsim.api + "/folders"
    d = ok(call(c, "POST", url, {"name": "Docs", "parent": {"id": "0"}}),
           201, "Folder--Full")
    assert d["name"] == "Docs" and d["id"] != "0"
    check_times(d)
    # Case-insensitive uniqueness: "docs" clashes with "Docs".
    e = err(call(c, "POST", url, {"name": "docs", "parent": {"id": "0"}}),
            409, "item_name_in_use")
    conf = e["context_info"]["conflicts"]
    conf = conf if isinstance(conf, list) else [conf]
    assert [x["id"] for x in conf] == [d["id"]]
    # A file of that name clashes with a folder too.
    st, _, body = simple_upload(c, "0", "DOCS", b"x")
    err((st, _, body), 409, "item_name_in_use")
    # Same name under another parent is fine.
    ok(call(c, "POST", url, {"name": "docs", "parent": {"id": d["id"]}}),
       201, "Folder--Full")
    err(call(c, "POST", url, {"name": "x", "parent": {"id": "424242"}}),
        404, "not_found")
    st, _, _ = call(c, "POST", url, {"name": "x"})
    assert st == 400


NAME_CASES = [
    ("a" * 255, None),
    ("a" * 256, "item_name_too_long"),
    ("with/slash", "item_name_invalid"),
    ("back\\slash", "item_name_invalid"),
    ("trailing ", "item_name_invalid"),
    (".", "item_name_invalid"),
    ("..", "item_name_invalid"),
    ("", "item_name_invalid"),
    ("ctl\x01char", "item_name_invalid"),
    ("..dots.", None),
    (" leading", None),
    ("ünïcødé ✓", None),
]


@pytest.mark.parametrize("name,code", NAME_CASES,
                         ids=[repr(n[:12]) for n, _ in NAME_CASES])
def test_name_rules(boxsim, name, code):
    c = boxsim.client
    for kind in ("folder", "file", "session"):
        if kind == "folder":
            r = call(c, "POST", boxsim.api + "/folders",
                     {"name": name, "parent": {"id": "0"}})
        elif kind == "file":
            r = simple_upload(c, "0", name, b"abc")
        else:
            r = call(c, "POST", boxsim.upload + "/files/upload_sessions",
                     {"folder_id": "0", "file_size": 30000000,
                      "file_name": name})
        if code is None:
            st = r[0]
            assert st == 201, (kind, r)
            # remove it for the next kind
            obj = r[2]
            if kind == "folder":
                call(c, "DELETE", boxsim.api + "/folders/" + obj["id"])
            elif kind == "file":
                call(c, "DELETE", boxsim.api + "/files/" +
                     obj["entries"][0]["id"])
            else:
                call(c, "DELETE", boxsim.upload +
                     "/files/upload_sessions/" + obj["id"])
        else:
            if code == "item_name_invalid" and name == "":
                assert r[0] == 400, (kind, r)
            else:
                err(r, 400, code)
    if code is not None:
        assert c.list("0") == []


def test_rename_and_move_folder(boxsim):
    c = boxsim.client
    a = c.create_folder("0", "a")
    b = c.create_folder("0", "b")
    c.create_folder("0", "taken")
    url = boxsim.api + "/folders/" + a["id"]
    r = ok(call(c, "PUT", url, {"name": "a2"}), 200, "Folder--Full")
    assert r["name"] == "a2"
    r = ok(call(c, "PUT", url, {"parent": {"id": b["id"]}}), 200,
           "Folder--Full")
    assert r["parent"]["id"] == b["id"]
    assert c.tree() == {"b": None, "b/a2": None, "taken": None}
    # Into itself / its own child: cyclical.
    inner = c.create_folder(a["id"], "inner")
    err(call(c, "PUT", boxsim.api + "/folders/" + b["id"],
             {"parent": {"id": inner["id"]}}), 400,
        "cyclical_folder_structure")
    err(call(c, "PUT", boxsim.api + "/folders/" + b["id"],
             {"parent": {"id": b["id"]}}), 400, "cyclical_folder_structure")
    # Onto an existing name (case-insensitive).
    err(call(c, "PUT", boxsim.api + "/folders/" + b["id"],
             {"name": "TAKEN"}), 409, "item_name_in_use")
    err(call(c, "PUT", url, {"name": "bad/name"}), 400, "item_name_invalid")
    # The root cannot be renamed or deleted.
    st, _, _ = call(c, "PUT", boxsim.api + "/folders/0", {"name": "x"})
    assert st in (400, 403), st
    assert c.tree() == {"b": None, "b/a2": None, "b/a2/inner": None,
                        "taken": None}


def test_delete_folder(boxsim):
    c = boxsim.client
    d = c.create_folder("0", "full")
    c.upload(d["id"], "f.txt", b"data")
    e = c.create_folder("0", "empty")
    err(call(c, "DELETE", boxsim.api + "/folders/" + d["id"]), 400,
        "folder_not_empty")
    err(call(c, "DELETE", boxsim.api + "/folders/" + d["id"] +
             "?recursive=false"), 400, "folder_not_empty")
    assert call(c, "DELETE", boxsim.api + "/folders/" + e["id"])[0] == 204
    st, _, body = call(c, "DELETE", boxsim.api + "/folders/" + d["id"] +
                       "?recursive=true")
    assert st == 204 and body is None
    assert c.list("0") == []
    err(call(c, "GET", boxsim.api + "/folders/" + d["id"]), 404, "not_found")
    err(call(c, "DELETE", boxsim.api + "/folders/" + d["id"]), 404,
        "not_found")
    st, _, _ = call(c, "DELETE", boxsim.api + "/folders/0?recursive=true")
    assert st in (400, 403, 405), st


def test_folder_items_fields_and_offset(boxsim):
    c = boxsim.client
    for i in range(5):
        c.upload("0", "f%d" % i, data_of(10 + i))
    c.create_folder("0", "zdir")
    base = boxsim.api + "/folders/0/items"
    page = ok(call(c, "GET", base), 200, "Items")
    assert page["total_count"] == 6
    # Folders come first, then files.
    assert [e["type"] for e in page["entries"]] == ["folder"] + ["file"] * 5
    f0 = [e for e in page["entries"] if e["name"] == "f0"][0]
    assert set(f0) >= {"type", "id", "etag", "sha1", "name", "file_version"}
    assert "size" not in f0            # mini representation by default
    page = ok(call(c, "GET", base + "?fields=size,content_modified_at,name"),
              200, "Items")
    f0 = [e for e in page["entries"] if e["name"] == "f0"][0]
    assert f0["size"] == 10
    check_times(f0)
    p1 = ok(call(c, "GET", base + "?offset=0&limit=4"), 200, "Items")
    p2 = ok(call(c, "GET", base + "?offset=4&limit=4"), 200, "Items")
    assert len(p1["entries"]) == 4 and len(p2["entries"]) == 2
    assert p1["total_count"] == p2["total_count"] == 6
    ids = [e["id"] for e in p1["entries"] + p2["entries"]]
    assert len(set(ids)) == 6
    ok(call(c, "GET", base + "?limit=1000"), 200, "Items")
    # Box caps a larger limit at its maximum.
    big = ok(call(c, "GET", base + "?limit=5000"), 200, "Items")
    assert big["limit"] == 1000 and len(big["entries"]) == 6
    err(call(c, "GET", base + "?limit=abc"), 400, "invalid_limit")
    err(call(c, "GET", base + "?limit=-1"), 400, "invalid_limit")
    err(call(c, "GET", base + "?offset=-3"), 400, "invalid_offset")
    err(call(c, "GET", base + "?usemarker=true&marker=%%%%garbage"), 400,
        "invalid_marker")
    err(call(c, "GET", boxsim.api + "/folders/777/items"), 404, "not_found")


# --- files ---------------------------------------------------------------------

def test_simple_upload_and_get_file(boxsim):
    c = boxsim.client
    data = data_of(12345, 3)
    st, _, body = simple_upload(
        c, "0", "hello.bin", data,
        attributes={"name": "hello.bin", "parent": {"id": "0"},
                    "content_modified_at": "2020-01-02T03:04:05Z"})
    files = ok((st, _, body), 201, "Files")
    assert files["total_count"] == 1 and len(files["entries"]) == 1
    f = files["entries"][0]
    assert f["sha1"] == sha1_hex(data) and f["size"] == len(data)
    full = ok(call(c, "GET", boxsim.api + "/files/" + f["id"]), 200,
              "File--Full")
    assert full["name"] == "hello.bin" and full["parent"]["id"] == "0"
    assert full["file_version"]["sha1"] == sha1_hex(data)
    for k in ("created_at", "modified_at", "content_created_at",
              "content_modified_at"):
        assert k in full, k
    check_times(full)
    assert full["content_modified_at"] in ("2020-01-02T03:04:05Z",
                                           "2020-01-02T03:04:05+00:00")
    assert full["item_status"] == "active"
    assert c.download(f["id"]) == data
    err(call(c, "GET", boxsim.api + "/files/99999999"), 404, "not_found")


def test_simple_upload_content_md5(boxsim):
    c = boxsim.client
    data = b"digest me"
    err(simple_upload(c, "0", "a", data, {"Content-MD5": "0" * 40}), 400,
        "bad_digest")
    assert c.list("0") == []
    ok(simple_upload(c, "0", "a", data, {"Content-MD5": sha1_hex(data)}),
       201, "Files")


def test_simple_upload_attributes_first(boxsim):
    c = boxsim.client
    err(simple_upload(c, "0", "late", b"abc", first=False), 400,
        "metadata_after_file_contents")
    assert c.list("0") == []
    ok(simple_upload(c, "0", "late", b"abc"), 201, "Files")


def test_simple_upload_bad_parent_and_conflict(boxsim):
    c = boxsim.client
    err(simple_upload(c, "31337", "x", b"abc"), 404, "not_found")
    ok(simple_upload(c, "0", "Same.txt", b"one"), 201)
    e = err(simple_upload(c, "0", "same.TXT", b"two"), 409,
            "item_name_in_use")
    conf = e["context_info"]["conflicts"]
    conf = conf[0] if isinstance(conf, list) else conf
    assert conf["name"] == "Same.txt" and conf["type"] == "file"
    assert c.download(c.find("Same.txt")["id"]) == b"one"


def test_simple_upload_chunked_transfer_encoding(boxsim):
    """A body sent with Transfer-Encoding: chunked (no Content-Length)."""
    from boxapi import multipart
    data = data_of(200000, 5)
    body, h = multipart({"name": "te.bin", "parent": {"id": "0"}}, data)
    u = urllib.parse.urlsplit(boxsim.upload)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h["Authorization"] = "Bearer " + boxsim.token
    h["Transfer-Encoding"] = "chunked"
    pieces = (body[i:i + 7000] for i in range(0, len(body), 7000))
    conn.request("POST", u.path + "/files/content", pieces, h,
                 encode_chunked=True)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    assert r.status == 201, raw
    f = json.loads(raw)["entries"][0]
    assert f["sha1"] == sha1_hex(data)
    assert boxsim.client.download(f["id"]) == data


def test_new_version_keeps_id(boxsim):
    c = boxsim.client
    f = c.upload("0", "v.txt", b"version one")
    full1 = c.get_file(f["id"])
    from boxapi import multipart
    body, h = multipart({"content_modified_at": "2021-05-05T05:05:05Z"},
                        b"version two!")
    r = ok(call(c, "POST", boxsim.upload + "/files/%s/content" % f["id"],
                body, h), 200, "Files")
    g = r["entries"][0]
    assert g["id"] == f["id"]
    full2 = c.get_file(f["id"])
    assert full2["sha1"] == sha1_hex(b"version two!") != full1["sha1"]
    assert full2["etag"] != full1["etag"]
    assert full2["file_version"]["id"] != full1["file_version"]["id"]
    assert full2["size"] == 12
    assert c.download(f["id"]) == b"version two!"
    err(call(c, "POST", boxsim.upload + "/files/5555555/content", body, h),
        404, "not_found")
    # If-Match with a stale etag: 412, nothing changes.
    body, h = multipart({}, b"three")
    h["If-Match"] = full1["etag"]
    err(call(c, "POST", boxsim.upload + "/files/%s/content" % f["id"],
             body, h), 412, "precondition_failed")
    assert c.download(f["id"]) == b"version two!"


def test_download_range(boxsim):
    c = boxsim.client
    data = data_of(100000, 9)
    f = c.upload("0", "r.bin", data)
    url = boxsim.api + "/files/%s/content" % f["id"]
    st, h, body = c.request("GET", url, headers={"Range": "bytes=100-199"})
    if st == 302:
        st, h, body = c.request("GET", h["Location"],
                                headers={"Range": "bytes=100-199"})
    assert st == 206, st
    assert body == data[100:200]
    assert h.get("Content-Range") == "bytes 100-199/100000"
    st, h, body = c.request("GET", url, headers={"Range": "bytes=99990-"})
    if st == 302:
        st, h, body = c.request("GET", h["Location"],
                                headers={"Range": "bytes=99990-"})
    assert st == 206 and body == data[99990:]
    st, h, body = c.request("GET", url, headers={"Range": "bytes=200000-"})
    if st == 302:
        st, h, body = c.request("GET", h["Location"],
                                headers={"Range": "bytes=200000-"})
    assert st == 416, st
    assert c.download(f["id"]) == data
    st, _, _ = c.request("GET", boxsim.api + "/files/4444444/content")
    assert st == 404


def test_download_needs_token(boxsim):
    f = boxsim.client.upload("0", "t.bin", b"secret")
    c = BoxClient(boxsim.api, boxsim.upload, None)
    st, _, _ = c.request("GET", boxsim.api + "/files/%s/content" % f["id"])
    assert st == 401


def test_update_file(boxsim):
    c = boxsim.client
    d = c.create_folder("0", "dest")
    f = c.upload("0", "old.txt", b"abc")
    c.upload("0", "other.txt", b"zzz")
    url = boxsim.api + "/files/" + f["id"]
    r = ok(call(c, "PUT", url, {"name": "new.txt"}), 200, "File--Full")
    assert r["name"] == "new.txt"
    r = ok(call(c, "PUT", url, {"content_modified_at":
                                "2019-09-09T09:09:09Z"}), 200, "File--Full")
    assert r["content_modified_at"].startswith("2019-09-09T09:09:09")
    r = ok(call(c, "PUT", url, {"parent": {"id": d["id"]}}), 200,
           "File--Full")
    assert r["parent"]["id"] == d["id"]
    assert c.tree() == {"dest": None, "dest/new.txt": sha1_hex(b"abc"),
                        "other.txt": sha1_hex(b"zzz")}
    assert c.get_file(f["id"])["content_modified_at"].startswith(
        "2019-09-09T09:09:09")
    # Conflicts, bad names, bad parents, bad times: refused, nothing changes.
    ok(call(c, "PUT", url, {"parent": {"id": "0"}}), 200)
    err(call(c, "PUT", url, {"name": "OTHER.txt"}), 409, "item_name_in_use")
    err(call(c, "PUT", url, {"name": "a/b"}), 400, "item_name_invalid")
    err(call(c, "PUT", url, {"parent": {"id": "8888888"}}), 404,
        "not_found")
    st, _, _ = call(c, "PUT", url, {"content_modified_at": "yesterday"})
    assert st == 400
    st, _, _ = call(c, "PUT", url, b"{not json",
                    {"Content-Type": "application/json"})
    assert st == 400
    assert c.get_file(f["id"])["name"] == "new.txt"
    err(call(c, "PUT", boxsim.api + "/files/7777777", {"name": "x"}), 404,
        "not_found")


def test_delete_file(boxsim):
    c = boxsim.client
    f = c.upload("0", "gone.txt", b"bye")
    st, _, body = call(c, "DELETE", boxsim.api + "/files/" + f["id"])
    assert st == 204 and body is None
    err(call(c, "GET", boxsim.api + "/files/" + f["id"]), 404, "not_found")
    err(call(c, "DELETE", boxsim.api + "/files/" + f["id"]), 404,
        "not_found")
    assert c.list("0") == []
    # The name is free again.
    ok(simple_upload(c, "0", "gone.txt", b"again"), 201)


def test_copy_file(boxsim):
    c = boxsim.client
    d = c.create_folder("0", "d")
    f = c.upload("0", "src.txt", b"copy me")
    url = boxsim.api + "/files/%s/copy" % f["id"]
    r = ok(call(c, "POST", url, {"parent": {"id": d["id"]}}), 201,
           "File--Full")
    assert r["id"] != f["id"] and r["name"] == "src.txt"
    assert r["sha1"] == sha1_hex(b"copy me")
    assert c.download(r["id"]) == b"copy me"
    r2 = ok(call(c, "POST", url, {"parent": {"id": "0"}, "name": "dup.txt"}),
            201, "File--Full")
    assert r2["name"] == "dup.txt"
    err(call(c, "POST", url, {"parent": {"id": "0"}}), 409,
        "item_name_in_use")
    err(call(c, "POST", url, {"parent": {"id": "0"}, "name": "SRC.TXT"}),
        409, "item_name_in_use")
    err(call(c, "POST", url, {"parent": {"id": "6666666"}}), 404,
        "not_found")
    st, _, _ = call(c, "POST", url, {"name": "noparent"})
    assert st == 400
    assert c.tree() == {"d": None, "d/src.txt": sha1_hex(b"copy me"),
                        "dup.txt": sha1_hex(b"copy me"),
                        "src.txt": sha1_hex(b"copy me")}


@pytest.mark.parametrize("suffix", ["", "/"])
def test_preflight(boxsim, suffix):
    c = boxsim.client
    url = boxsim.api + "/files/content" + suffix
    r = ok(call(c, "OPTIONS", url, {"name": "new.txt", "size": 10,
                                    "parent": {"id": "0"}}), 200,
           "UploadUrl")
    assert r["upload_url"].startswith(boxsim.base)
    f = c.upload("0", "Exists.txt", b"here")
    e = err(call(c, "OPTIONS", url, {"name": "exists.txt",
                                     "parent": {"id": "0"}}), 409,
            "item_name_in_use")
    schema_conflict = e["context_info"]["conflicts"]
    conf = schema_conflict[0] if isinstance(schema_conflict, list) else \
        schema_conflict
    assert conf["id"] == f["id"] and conf["sha1"] == sha1_hex(b"here")
    err(call(c, "OPTIONS", url, {"name": "bad/name", "parent": {"id": "0"}}),
        400, "item_name_invalid")
    err(call(c, "OPTIONS", url, {"name": "x", "parent": {"id": "123123"}}),
        404, "not_found")
    assert [e["name"] for e in c.list("0")] == ["Exists.txt"]


def test_unknown_route_and_method(boxsim):
    c = boxsim.client
    st, _, _ = call(c, "GET", boxsim.api + "/no/such/thing")
    assert st in (404, 405), st
    st, _, _ = call(c, "PATCH", boxsim.api + "/folders/0")
    assert st == 405, st
    # Malformed JSON bodies are 400, not a crash.
    st, _, _ = call(c, "POST", boxsim.api + "/folders", b"{\"name\":",
                    {"Content-Type": "application/json"})
    assert st == 400
    st, _, _ = call(c, "POST", boxsim.api + "/folders", b"[1,2]",
                    {"Content-Type": "application/json"})
    assert st == 400
    ok(call(c, "GET", boxsim.api + "/folders/0"), 200)
