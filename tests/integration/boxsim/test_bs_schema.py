"""boxsim: every kind of JSON answer validated against Box's OpenAPI schemas
(shared/spec/box-openapi.json).  Skipped, saying why, when the spec or
python3-jsonschema is missing.  Also checks that the validator can fail."""

import urllib.parse

import pytest

import boxschema
from bs_helpers import (CM, PS, call, commit, data_of, multipart, put_part,
                        session, simple_upload)

pytestmark = pytest.mark.skipif(boxschema.SPEC_PATH is None,
                                reason=boxschema.MISSING or "")


def _v(name, resp, status):
    st, _, obj = resp
    assert st == status, (name, st, obj)
    errs = boxschema.errors(name, obj)
    return ["%s (HTTP %s): %s" % (name, st, e) for e in errs]


def test_every_response_kind(boxsim_factory):
    sim = boxsim_factory(part_size=PS, chunked_min=CM,
                         extra_args=("--client-id", "c", "--client-secret",
                                     "s", "--refresh-token", "r"))
    c, api, up = sim.client, sim.api, sim.upload
    bad = []
    bad += _v("Folder--Full", call(c, "GET", api + "/folders/0"), 200)
    r = call(c, "POST", api + "/folders",
             {"name": "d", "parent": {"id": "0"}})
    bad += _v("Folder--Full", r, 201)
    fid = r[2]["id"]
    bad += _v("Folder--Full", call(c, "PUT", api + "/folders/" + fid,
                                   {"name": "d2"}), 200)
    r = simple_upload(c, "0", "f.txt", b"hello")
    bad += _v("Files", r, 201)
    f = r[2]["entries"][0]["id"]
    body, h = multipart({}, b"hello again")
    bad += _v("Files", call(c, "POST", up + "/files/%s/content" % f, body,
                            h), 200)
    bad += _v("File--Full", call(c, "GET", api + "/files/" + f), 200)
    bad += _v("File--Full", call(c, "PUT", api + "/files/" + f,
                                 {"name": "g.txt"}), 200)
    bad += _v("File--Full", call(c, "POST", api + "/files/%s/copy" % f,
                                 {"parent": {"id": fid}}), 201)
    bad += _v("Items", call(c, "GET", api + "/folders/0/items"), 200)
    bad += _v("Items", call(c, "GET", api + "/folders/0/items?usemarker=true"
                            "&limit=1"), 200)
    bad += _v("Items", call(c, "GET", api + "/folders/0/items?fields=size,"
                            "sha1,content_modified_at,modified_at"), 200)
    bad += _v("UploadUrl", call(c, "OPTIONS", api + "/files/content",
                                {"name": "n", "parent": {"id": "0"}}), 200)
    bad += _v("User--Full", call(c, "GET", api + "/users/me"), 200)
    data = data_of(CM + 1, 1)
    r = session(c, "0", "big.bin", len(data))
    bad += _v("UploadSession", r, 201)
    sid = r[2]["id"]
    bad += _v("UploadSession", call(c, "GET", up + "/files/upload_sessions/"
                                    + sid), 200)
    parts = []
    for o in range(0, len(data), PS):
        r = put_part(c, sid, o, data[o:o + PS], len(data))
        bad += _v("UploadedPart", r, 200)
        bad += ["UploadPart: " + e for e in
                boxschema.errors("UploadPart", r[2]["part"])]
        parts.append(r[2]["part"])
    bad += _v("UploadParts", call(c, "GET", up + "/files/upload_sessions/%s"
                                  "/parts" % sid), 200)
    # Errors of every family.
    bad += _v("ClientError", put_part(c, sid, 0, data[:PS], len(data)), 416)
    bad += _v("ClientError", call(c, "GET", api + "/files/123456789"), 404)
    bad += _v("ClientError", call(c, "POST", api + "/folders",
                                  {"name": "D2", "parent": {"id": "0"}}), 409)
    bad += _v("ClientError", session(c, "0", "s", 5), 400)
    bad += _v("ClientError", commit(c, sid, parts, b"wrong"), 400)
    bad += _v("Files", commit(c, sid, parts, data), 201)
    st, _, raw = c.request("POST", sim.base + "/oauth2/token",
                           urllib.parse.urlencode(
                               {"grant_type": "refresh_token",
                                "client_id": "c", "client_secret": "s",
                                "refresh_token": "r"}).encode(),
                           {"Content-Type":
                            "application/x-www-form-urlencoded"})
    import json
    assert st == 200
    bad += ["AccessToken: " + e for e in
            boxschema.errors("AccessToken", json.loads(raw))]
    assert not bad, "\n".join(bad)


def test_validator_rejects_wrong_shapes(boxsim):
    c = boxsim.client
    f = c.upload("0", "x", b"x")
    full = c.get_file(f["id"])
    broken = dict(full, size="five")
    assert boxschema.errors("File--Full", broken)
    assert boxschema.errors("UploadSession", {"part_size": "8"})
    assert boxschema.errors("ClientError", {"type": "error", "status": "x"})
    assert boxschema.errors("Items", {"entries": "none"})
    assert boxschema.errors("UploadPart", {"offset": "0"})


def test_nullable_conversion():
    s = boxschema._convert({"type": "object", "properties": {
        "a": {"type": "string", "nullable": True},
        "b": {"$ref": "#/x", "nullable": True},
        "c": {"type": "string", "enum": ["p"], "nullable": True},
        "d": {"type": "integer"}}})
    p = s["properties"]
    assert p["a"]["type"] == ["string", "null"]
    assert p["b"] == {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}
    assert p["c"]["enum"] == ["p", None]
    assert p["d"] == {"type": "integer"}
