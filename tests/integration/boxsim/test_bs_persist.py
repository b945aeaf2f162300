"""boxsim: restart persistence, the data dir as ordinary files, paging of
big folders, TLS."""

import json
import shutil
import ssl
import urllib.request

import pytest

from boxsimctl import self_signed_cert
from bs_helpers import (CM, PS, call, commit, data_of, err, ok, put_part,
                        session, sha1_hex)


def test_restart_keeps_files(boxsim_factory):
    sim = boxsim_factory(part_size=PS, chunked_min=CM)
    c = sim.client
    d = c.create_folder("0", "Folder A")
    small = c.upload(d["id"], "small.txt", b"small file\n",
                     mtime="2020-06-01T12:00:00Z")
    big = data_of(CM + 123, 1)
    s = ok(session(c, d["id"], "big.bin", len(big)), 201)
    parts = [ok(put_part(c, s["id"], o, big[o:o + PS], len(big)),
                200)["part"] for o in range(0, len(big), PS)]
    bf = ok(commit(c, s["id"], parts, big), 201)["entries"][0]
    v = c.upload("0", "ver.txt", b"v1")
    c.upload_version(v["id"], b"v2 is longer")
    gone = c.upload("0", "gone.txt", b"x")
    assert call(c, "DELETE", sim.api + "/files/" + gone["id"])[0] == 204
    before = c.tree()
    full = {f["id"]: c.get_file(f["id"]) for f in (small, bf, v)}
    old_port = sim.port

    sim.restart()
    c = sim.client
    assert sim.port == old_port
    assert c.tree() == before
    assert c.find("Folder A")["id"] == d["id"]
    for fid, f in full.items():
        g = c.get_file(fid)
        for k in ("name", "size", "sha1", "etag", "content_modified_at",
                  "parent"):
            assert g[k] == f[k], (k, g[k], f[k])
    assert c.download(small["id"]) == b"small file\n"
    assert c.download(bf["id"]) == big
    assert c.download(v["id"]) == b"v2 is longer"
    assert c.get_file(small["id"])["content_modified_at"].startswith(
        "2020-06-01T12:00:00")
    err(call(c, "GET", sim.api + "/files/" + gone["id"]), 404, "not_found")
    # New ids do not collide with the old ones.
    n = c.upload(d["id"], "new.txt", b"new")
    assert n["id"] not in full and n["id"] != d["id"]
    assert c.download(small["id"]) == b"small file\n"


def test_restart_after_kill(boxsim_factory):
    """Committed means durable: even a SIGKILL keeps it."""
    sim = boxsim_factory()
    f = sim.client.upload("0", "k.txt", b"kept")
    sim.kill()
    sim.start()
    assert sim.client.download(f["id"]) == b"kept"
    assert sim.client.find("k.txt")["id"] == f["id"]


def test_data_dir_visible_as_files(boxsim_factory):
    sim = boxsim_factory(part_size=PS, chunked_min=CM)
    c = sim.client
    d = c.create_folder("0", "docs")
    sub = c.create_folder(d["id"], "sub")
    c.upload(sub["id"], "a.txt", b"hello tree")
    f = c.upload("0", "top.bin", data_of(5000))
    tree = sim.data_dir / "tree"
    assert (tree / "docs/sub/a.txt").read_bytes() == b"hello tree"
    assert (tree / "top.bin").read_bytes() == data_of(5000)
    # A rename and a new version show there too.
    call(c, "PUT", sim.api + "/files/" + f["id"], {"name": "renamed.bin"})
    c.upload_version(f["id"], b"new content")
    assert (tree / "renamed.bin").read_bytes() == b"new content"
    assert not (tree / "top.bin").exists()


def test_start_on_copied_data_dir(boxsim_factory, tmp_path):
    sim = boxsim_factory()
    sim.client.upload("0", "c.txt", b"copied")
    sim.stop()
    dst = tmp_path / "copy"
    shutil.copytree(sim.data_dir, dst)
    other = boxsim_factory(data_dir=dst)
    assert other.client.tree() == {"c.txt": sha1_hex(b"copied")}


def test_marker_and_offset_paging_over_1000(boxsim):
    c = boxsim.client
    # Kept just over 1000: every create rewrites boxsim's whole meta.json
    # (see the report), so creating entries costs O(n) each.
    n = 1012
    d = c.create_folder("0", "many")
    names = set()
    for i in range(n):
        name = "f%04d" % i
        if i % 100 == 7:
            c.upload(d["id"], name, b"%d" % i)
        else:
            c.create_folder(d["id"], name)
        names.add(name)
    base = boxsim.api + "/folders/%s/items" % d["id"]
    # Marker paging: 1000 then 105, next_marker absent on the last page.
    p1 = ok(call(c, "GET", base + "?usemarker=true&limit=1000"), 200,
            "Items")
    assert len(p1["entries"]) == 1000 and p1.get("next_marker")
    assert "total_count" not in p1
    p2 = ok(call(c, "GET", base + "?usemarker=true&limit=1000&marker=" +
                 p1["next_marker"]), 200, "Items")
    assert len(p2["entries"]) == n - 1000
    assert "next_marker" not in p2, p2.get("next_marker")
    got = [e["name"] for e in p1["entries"] + p2["entries"]]
    assert set(got) == names and len(got) == n
    # Offset paging.
    seen, off = [], 0
    while True:
        p = ok(call(c, "GET", base + "?offset=%d&limit=400" % off), 200,
               "Items")
        assert p["total_count"] == n and p["offset"] == off
        seen += [e["id"] for e in p["entries"]]
        off += p["limit"]
        if off >= p["total_count"]:
            break
    assert len(seen) == len(set(seen)) == n
    # The client helper walks the markers.
    assert len(c.list(d["id"])) == n
    # The folder's own item_collection is capped at 100 entries.
    fo = ok(call(c, "GET", boxsim.api + "/folders/" + d["id"]), 200,
            "Folder--Full")
    assert fo["item_collection"]["total_count"] == n
    assert len(fo["item_collection"]["entries"]) <= 100


def _self_signed(tmp_path):
    pair = self_signed_cert(tmp_path)
    if not pair:
        pytest.skip("openssl cannot make a certificate")
    return pair


def test_tls(boxsim_factory, tmp_path):
    cert, key = _self_signed(tmp_path)
    sim = boxsim_factory(tls=(cert, key))
    assert sim.base.startswith("https://127.0.0.1:")
    ctx = ssl.create_default_context(cafile=str(cert))
    req = urllib.request.Request(sim.api + "/folders/0", headers={
        "Authorization": "Bearer " + sim.token})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        assert r.status == 200
        assert json.loads(r.read())["id"] == "0"
    # The fixture's client and control calls work over TLS too.
    f = sim.client.upload("0", "tls.txt", b"over tls")
    assert sim.client.download(f["id"]) == b"over tls"
    sim.add_fault("kind=status,status=503,path=/2.0/users/me")
    assert sim.client.request("GET", sim.api + "/users/me")[0] == 503
    assert sim.log()[-1]["fault"] == "status"
    # Without trusting the certificate the handshake fails.
    with pytest.raises(OSError):
        urllib.request.urlopen(req, timeout=10)
