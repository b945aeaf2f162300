"""Changes made on the server by other Box clients show up on the mount once
the caches expire (dir_ttl, attr_ttl), and never as stale bytes."""

import errno
import os
import time

from boxfs_helpers import data_of, errno_of, put, read_file, wait_until

TTL = ["dir_ttl=1", "attr_ttl=1"]


def test_server_side_additions_and_deletions_appear(sim, boxfs_factory):
    c = sim.client
    gone = put(c, "0", "gone.txt", b"bye")
    m = boxfs_factory(sim, *TTL)
    assert os.listdir(m.path) == ["gone.txt"]
    put(c, "0", "new.txt", b"hello")
    c.create_folder("0", "newdir")
    st, _, _ = c.request("DELETE", sim.api + "/files/%s" % gone["id"])
    assert st == 204
    wait_until(lambda: sorted(os.listdir(m.path)) == ["new.txt", "newdir"],
               timeout=10, what="the server's changes on the mount")
    assert read_file(m.path / "new.txt") == b"hello"
    # The kernel may keep a name it was given for attr_ttl more.
    wait_until(lambda: errno_of(os.stat, m.path / "gone.txt") == errno.ENOENT,
               timeout=5, what="ENOENT for the deleted file")
    assert errno_of(read_file, m.path / "gone.txt") == errno.ENOENT


def test_new_version_on_server_is_read_fresh(sim, boxfs_factory):
    c = sim.client
    put(c, "0", "v.bin", data_of(50000, 1))
    f = c.find("v.bin")
    m = boxfs_factory(sim, *TTL)
    assert read_file(m.path / "v.bin") == data_of(50000, 1)
    # Another client uploads a new version of a different size.
    new = data_of(30001, 2)
    st, _, body = c.request(
        "POST", sim.upload + "/files/%s/content" % f["id"],
        *_multipart(new))
    assert st == 200, body
    time.sleep(2.5)  # past both TTLs
    assert os.stat(m.path / "v.bin").st_size == len(new)
    assert read_file(m.path / "v.bin") == new


def test_server_side_rename_appears(sim, boxfs_factory):
    c = sim.client
    f = put(c, "0", "old-name", b"same bytes")
    m = boxfs_factory(sim, *TTL)
    assert os.listdir(m.path) == ["old-name"]
    st, _, _ = c.request("PUT", sim.api + "/files/%s" % f["id"],
                         b'{"name": "new-name"}',
                         {"Content-Type": "application/json"})
    assert st == 200
    wait_until(lambda: os.listdir(m.path) == ["new-name"], timeout=10,
               what="the rename on the mount")
    assert read_file(m.path / "new-name") == b"same bytes"


def _multipart(data):
    import hashlib
    b = "e-boundary-7d1f"
    body = (("--%s\r\nContent-Disposition: form-data; name=\"attributes\"\r\n"
             "\r\n{}\r\n--%s\r\nContent-Disposition: form-data; name=\"file\";"
             " filename=\"v.bin\"\r\nContent-Type: application/octet-stream"
             "\r\n\r\n") % (b, b)).encode() + data + \
        ("\r\n--%s--\r\n" % b).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=" + b,
                  "Content-MD5": hashlib.sha1(data).hexdigest()}
