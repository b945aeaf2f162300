"""Helpers for the boxsim HTTP tests (tests/integration/boxsim)."""

import json
import re

import boxschema
from boxapi import multipart, sha1_b64, sha1_hex  # noqa: F401

MiB = 1024 * 1024
PS = MiB            # --part-size of the small servers
CM = 2 * MiB        # --chunked-min of the small servers

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?"
                     r"(Z|[+-]\d\d:\d\d)$")


def data_of(n, seed=0):
    """n deterministic, non-repeating-looking bytes."""
    block = bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF
                  for i in range(65536))
    return (block * (n // len(block) + 1))[:n]


def schema(name, obj):
    """Validates obj against the spec schema `name` (no-op without the
    spec: test_bs_schema.py then skips and says why)."""
    if boxschema.SPEC_PATH:
        boxschema.validate(name, obj)
    return obj


def call(c, method, url, body=None, headers=None):
    """-> (status, headers, parsed JSON or None)."""
    st, h, raw = c.request(method, url, body, headers)
    obj = None
    if raw:
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = raw
    return st, h, obj


def ok(resp, status, kind=None):
    st, h, obj = resp
    assert st == status, "expected %s, got %s: %r" % (status, st, obj)
    if kind:
        schema(kind, obj)
    return obj


def err(resp, status, code):
    """The answer is a Box ClientError with this status and code."""
    st, h, obj = resp
    assert st == status, "expected %s %s, got %s: %r" % (status, code, st,
                                                         obj)
    assert isinstance(obj, dict), "error body is not JSON: %r" % (obj,)
    assert obj.get("type") == "error", obj
    assert obj.get("status") == status, obj
    assert obj.get("code") == code, "expected code %s, got %r" % (code, obj)
    assert "application/json" in (h.get("Content-Type") or ""), \
        h.get("Content-Type")
    schema("ClientError", obj)
    return obj


def check_times(obj, keys=("created_at", "modified_at", "content_created_at",
                           "content_modified_at")):
    for k in keys:
        if k in obj:
            assert isinstance(obj[k], str) and RFC3339.match(obj[k]), \
                "%s is not an RFC 3339 time: %r" % (k, obj[k])


def simple_upload(c, parent, name, data, headers=None, attributes=None,
                  first=True):
    att = attributes if attributes is not None else \
        {"name": name, "parent": {"id": parent}}
    body, h = multipart(att, data, attributes_first=first)
    h.update(headers or {})
    return call(c, "POST", c.upload_root + "/files/content", body, h)


def session(c, parent, name, size):
    return call(c, "POST", c.upload_root + "/files/upload_sessions",
                {"folder_id": parent, "file_size": size, "file_name": name})


def put_part(c, sid, first, chunk, total, digest=None, crange=None,
             extra=None):
    h = {"Content-Type": "application/octet-stream",
         "Content-Range": crange or "bytes %d-%d/%d" % (
             first, first + len(chunk) - 1, total),
         "Digest": digest or "sha=" + sha1_b64(chunk)}
    h.update(extra or {})
    return call(c, "PUT", c.upload_root + "/files/upload_sessions/" + sid,
                chunk, h)


def commit(c, sid, parts, whole, attributes=None, digest=None):
    body = {"parts": parts}
    if attributes:
        body["attributes"] = attributes
    return call(c, "POST", c.upload_root + "/files/upload_sessions/%s/commit"
                % sid, body, {"Digest": digest or "sha=" + sha1_b64(whole)})
