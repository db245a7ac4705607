"""Publishing a record by rename: the old record or the new one, whole, with or without an atomic exchange."""

import ctypes

import pytest

from oneshot_lab.records import atomic


def record(path, text):
    """A directory holding one file, `text` in it."""
    path.mkdir(parents=True)
    (path / "metrics.csv").write_text(text)
    return path


@pytest.mark.parametrize("exchange", [True, False])
def test_publish_replaces_the_old_record_and_leaves_nothing_behind(tmp_path, monkeypatch, exchange):
    if not exchange:  # a system without renameat2: the rename-aside fallback
        def unsupported(*args, **kwargs):
            raise OSError("no libc")
        monkeypatch.setattr(ctypes, "CDLL", unsupported)
    final = record(tmp_path / "r", "old\n")
    staging = record(tmp_path / ".sweep" / "partial" / "r.1", "new\n")
    assert atomic.publish(staging, final) == final
    assert (final / "metrics.csv").read_text() == "new\n" and not staging.exists()
    assert sorted(p.name for p in staging.parent.iterdir()) == []  # no '.old' copy left
    fresh = record(tmp_path / ".sweep" / "partial" / "s.1", "first\n")
    assert (atomic.publish(fresh, tmp_path / "s") / "metrics.csv").read_text() == "first\n"


def test_a_write_is_readable_by_others_and_creates_its_directory(tmp_path):
    path = atomic.atomic_write_text(tmp_path / "deep" / "a.txt", "x")
    assert path.read_text() == "x" and path.stat().st_mode & 0o044 and list(path.parent.iterdir()) == [path]
