"""Everyday edits of existing small files and of files being written:
append, in-place rewrite, truncate(2), rename or unlink while open,
several writers at once.  Checked on the mount and on the server."""

import concurrent.futures
import errno
import os

from boxfs_helpers import (assert_server_file, data_of, errno_of, names, put,
                           read_file, run, write_file)


def test_append_to_existing_file(sim, mnt):
    c = sim.client
    f = put(c, "0", "log.txt", b"line 1\n")
    run("sh", "-c", 'echo "line 2" >> "$1"', "sh", mnt.path / "log.txt")
    assert read_file(mnt.path / "log.txt") == b"line 1\nline 2\n"
    assert_server_file(c, "log.txt", b"line 1\nline 2\n")
    assert c.find("log.txt")["id"] == f["id"]
    with open(mnt.path / "log.txt", "ab") as a:
        a.write(b"line 3\n")
    assert_server_file(c, "log.txt", b"line 1\nline 2\nline 3\n")
    assert os.stat(mnt.path / "log.txt").st_size == 21


def test_rewrite_in_the_middle(sim, mnt):
    c = sim.client
    data = bytearray(data_of(200000, 4))
    put(c, "0", "db", bytes(data))
    fd = os.open(mnt.path / "db", os.O_RDWR)
    try:
        assert os.pwrite(fd, b"PATCHED", 100000) == 7
        assert os.pread(fd, 11, 99998) == bytes(data[99998:100000]) + \
            b"PATCHED" + bytes(data[100007:100009])
    finally:
        os.close(fd)
    data[100000:100007] = b"PATCHED"
    assert read_file(mnt.path / "db") == bytes(data)
    assert_server_file(c, "db", bytes(data))


def test_truncate_existing_file(sim, mnt):
    c = sim.client
    data = data_of(10000, 5)
    f = put(c, "0", "t.bin", data)
    os.truncate(mnt.path / "t.bin", 4000)
    assert os.stat(mnt.path / "t.bin").st_size == 4000
    assert_server_file(c, "t.bin", data[:4000])
    run("truncate", "-s", "6000", mnt.path / "t.bin")
    want = data[:4000] + bytes(2000)
    assert read_file(mnt.path / "t.bin") == want
    assert_server_file(c, "t.bin", want)
    assert c.find("t.bin")["id"] == f["id"]


def test_rename_while_being_written(sim, mnt):
    c = sim.client
    fd = os.open(mnt.path / "draft", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                 0o644)
    try:
        os.write(fd, b"first half, ")
        os.rename(mnt.path / "draft", mnt.path / "final")
        os.write(fd, b"second half")
    finally:
        os.close(fd)
    assert names(c, "0") == ["final"]
    assert_server_file(c, "final", b"first half, second half")
    assert read_file(mnt.path / "final") == b"first half, second half"
    assert os.listdir(mnt.path) == ["final"]


def test_unlink_while_being_written(sim, mnt):
    c = sim.client
    fd = os.open(mnt.path / "scratch", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"temporary")
        os.unlink(mnt.path / "scratch")
        os.write(fd, b" data")
    finally:
        os.close(fd)
    assert names(c, "0") == []
    assert os.listdir(mnt.path) == []


def test_rmdir_refuses_folder_with_a_file_being_written(sim, mnt):
    c = sim.client
    os.mkdir(mnt.path / "d")
    fd = os.open(mnt.path / "d/f", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x")
        assert errno_of(os.rmdir, mnt.path / "d") == errno.ENOTEMPTY
    finally:
        os.close(fd)
    assert_server_file(c, "d/f", b"x")


def test_many_writers_at_once(sim, mnt):
    c = sim.client
    os.mkdir(mnt.path / "par")

    def one(i):
        write_file(mnt.path / "par" / ("f%02d" % i), data_of(1000 * i + 1, i))
        return i

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        assert sorted(ex.map(one, range(24))) == list(range(24))
    assert sorted(os.listdir(mnt.path / "par")) == \
        ["f%02d" % i for i in range(24)]
    folder = c.find("par")
    assert names(c, folder["id"]) == ["f%02d" % i for i in range(24)]
    for i in range(24):
        assert_server_file(c, "par/f%02d" % i, data_of(1000 * i + 1, i))


def test_name_length_counts_characters(sim, mnt):
    """Box allows 255 characters, whatever their UTF-8 length."""
    c = sim.client
    ok = "é" * 255          # 510 bytes
    write_file(mnt.path / ok, b"long")
    assert_server_file(c, ok, b"long")
    assert os.listdir(mnt.path) == [ok]
    got = errno_of(write_file, mnt.path / ("é" * 256), b"too long")
    assert got == errno.ENAMETOOLONG, errno.errorcode.get(got, got)
    assert names(c, "0") == [ok]
