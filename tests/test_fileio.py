"""Atomic writes, and the removal of the temporary files a killed writer leaves."""

import fcntl
import os

import pytest

from srlab.fileio import atomic_path, atomic_write_bytes, remove_stale_temp_files


def test_an_atomic_write_replaces_the_file_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_bytes(target, b"old")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise Boom
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_the_next_write_removes_leftovers_of_killed_writers_only(tmp_path):
    leftovers = [
        tmp_path / ".state.0123abcd.tmp.pt", tmp_path / ".image.89abcdef.tmp.png", tmp_path / ".log.deadbeef.tmp",
    ]
    others = [
        tmp_path / ".notes.tmp",  # not srlab's pattern (no 8 hex digits)
        tmp_path / "state.0123abcd.tmp.pt",  # not hidden
        tmp_path / ".state.0123abcd.tmp.pt.bak",  # a suffix after the suffix
        tmp_path / "photo.png",
    ]
    for path in leftovers + others:
        path.write_bytes(b"x")
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    (elsewhere / ".state.0123abcd.tmp.pt").write_bytes(b"x")

    atomic_write_bytes(tmp_path / "result.bin", b"new")
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in others)
    assert (elsewhere / ".state.0123abcd.tmp.pt").exists()  # only the folder written to is cleaned


def test_a_temporary_file_that_a_live_writer_holds_is_kept(tmp_path):
    busy = tmp_path / ".state.0123abcd.tmp.pt"
    busy.write_bytes(b"being written")
    fd = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what atomic_path's writer holds until its rename
        assert remove_stale_temp_files(tmp_path) == []
        atomic_write_bytes(tmp_path / "other.bin", b"x")
        assert busy.exists()
    finally:
        os.close(fd)  # the writer dies: its lock goes with it
    assert remove_stale_temp_files(tmp_path) == [busy]
    assert not busy.exists()


def test_a_writer_holds_its_temporary_file_locked_until_the_rename(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"data")
        assert remove_stale_temp_files(tmp_path) == []  # another cleaner, meanwhile
        assert tmp.exists()
    assert target.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_folder_is_scanned_for_leftovers_at_most_once_a_minute(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("srlab.fileio.time.monotonic", lambda: clock[0])
    atomic_write_bytes(tmp_path / "a.bin", b"a")  # the first write scans
    leftover = tmp_path / ".state.0123abcd.tmp.pt"
    leftover.write_bytes(b"x")
    atomic_write_bytes(tmp_path / "b.bin", b"b")
    assert leftover.exists()  # 0 s later: not scanned again
    clock[0] += 60.0
    atomic_write_bytes(tmp_path / "c.bin", b"c")
    assert not leftover.exists()
