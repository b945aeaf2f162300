"""The spool: private (0700 directory, 0600 files), holds the data while a
file is written, is removed once the file is committed, and spool files of
an earlier run are cleaned up with a log line (never silently leaked)."""

import os
import stat

import pytest

from boxfs_helpers import assert_server_file, data_of, read_file, wait_until
from test_upload_sizes import CM, PS, small_sim


def spool_files(cache):
    return sorted(p for p in cache.iterdir() if p.name.startswith("spool-"))


@pytest.mark.boxfs_timeout(120)
def test_spool_private_and_removed_after_commit(boxsim_factory, boxfs_factory,
                                                tmp_path):
    sim = small_sim(boxsim_factory)
    cache = tmp_path / "spool" / "nested"   # created by boxfs (mkdir -p)
    m = boxfs_factory(sim, "chunked_min=%d" % CM, cache_dir=cache)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    data = data_of(CM + 17, 1)
    fd = os.open(m.path / "sp", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        files = spool_files(cache)
        assert len(files) == 1, files
        assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
        assert os.stat(files[0]).st_size == len(data)
        # reads of a file being written see its data
        assert os.pread(fd, 1000, PS - 500) == data[PS - 500:PS + 500]
    finally:
        os.close(fd)
    assert_server_file(sim.client, "sp", data)
    # the kernel sends RELEASE (which drops the spool) after close() returns
    wait_until(lambda: spool_files(cache) == [], timeout=10,
               what="spool file removed after the release")


@pytest.mark.boxfs_timeout(120)
def test_leftover_spool_files_cleaned(boxsim_factory, boxfs_factory, tmp_path):
    sim = small_sim(boxsim_factory)
    cache = tmp_path / "c"
    cache.mkdir(mode=0o700)
    # pid 0x3ffffff is above pid_max: that daemon is surely gone
    for i in (1, 2):
        (cache / ("spool-%d-%d" % (0x3ffffff, i))).write_bytes(b"x" * 100)
    (cache / "unrelated").write_bytes(b"keep")
    m = boxfs_factory(sim, "chunked_min=%d" % CM, cache_dir=cache)
    assert spool_files(cache) == []
    assert (cache / "unrelated").read_bytes() == b"keep"
    assert "removed 2 spool file(s)" in m.stderr_text()
    # and the mount works with that cache
    (m.path / "after").write_bytes(b"ok")
    assert read_file(m.path / "after") == b"ok"
