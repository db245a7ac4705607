"""core.array_cache: arrays kept in the data directory are read back exactly, and only when intact and made for
the key; a link, a damaged file, another key, a wrong checksum or a pickle is made again and written over."""

import io
import os

import numpy as np
import pytest

from oneshot_lab.core import array_cache, data

KEY = '{"maker": "1.0"}'


def arrays():
    return {"x": np.arange(12, dtype=np.float64).reshape(3, 4) / 7, "y": np.array([3, 1, 2], dtype=np.int64)}


class Maker:
    """`make` for array_cache.cached that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return arrays()


def same(got, expected):
    return set(got) == set(expected) and all(got[k].dtype == expected[k].dtype and np.array_equal(got[k], expected[k])
                                             for k in expected)


def test_made_once_then_read_back_bit_for_bit(tmp_path):
    make = Maker()
    first = array_cache.cached(tmp_path, "toy", KEY, make)
    second = array_cache.cached(tmp_path, "toy", KEY, make)
    assert make.calls == 1 and same(first, arrays()) and same(second, arrays())
    assert [p.name for p in tmp_path.iterdir()] == [array_cache.path_for(tmp_path, "toy", KEY).name]


def test_another_key_is_another_file_and_a_file_renamed_to_it_is_not_used(tmp_path):
    make = Maker()
    array_cache.cached(tmp_path, "toy", KEY, make)
    other = '{"maker": "2.0"}'
    assert array_cache.path_for(tmp_path, "toy", other) != array_cache.path_for(tmp_path, "toy", KEY)
    os.replace(array_cache.path_for(tmp_path, "toy", KEY), array_cache.path_for(tmp_path, "toy", other))
    array_cache.cached(tmp_path, "toy", other, make)
    assert make.calls == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "checksum", "pickle", "empty"])
def test_a_damaged_or_forged_file_is_made_again_and_written_over(tmp_path, damage):
    path = array_cache.path_for(tmp_path, "toy", KEY)
    make = Maker()
    array_cache.cached(tmp_path, "toy", KEY, make)
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04" + os.urandom(200))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        forged = {**arrays(), "y": np.array([9, 9, 9])}
        extra = {"z": np.array([object()], dtype=object)} if damage == "pickle" else {}
        buffer = io.BytesIO()
        np.savez(buffer, __key__=np.array(KEY), __sha256__=np.array(array_cache.digest(arrays(), KEY)), **forged, **extra)
        path.write_bytes(buffer.getvalue())
    got = array_cache.cached(tmp_path, "toy", KEY, make)
    assert make.calls == 2 and same(got, arrays())
    assert array_cache.read(path, KEY) is not None  # written over with a good file


def test_a_planted_link_is_not_followed_and_is_replaced_by_a_file(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    array_cache.cached(elsewhere, "toy", KEY, Maker())  # a valid file for the key, behind the link
    folder = tmp_path / "cache"
    folder.mkdir()
    link = array_cache.path_for(folder, "toy", KEY)
    link.symlink_to(array_cache.path_for(elsewhere, "toy", KEY))
    target_before = link.resolve().read_bytes()
    make = Maker()
    assert same(array_cache.cached(folder, "toy", KEY, make), arrays()) and make.calls == 1
    assert not link.is_symlink() and link.is_file()
    assert array_cache.path_for(elsewhere, "toy", KEY).read_bytes() == target_before  # never written through


def test_a_folder_that_is_a_link_is_neither_read_nor_written(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    array_cache.cached(elsewhere, "toy", KEY, Maker())
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    folder = tmp_path / "generated"
    folder.symlink_to(elsewhere, target_is_directory=True)
    make = Maker()
    assert same(array_cache.cached(folder, "toy", KEY, make), arrays()) and make.calls == 1
    assert same(array_cache.cached(folder, "other", KEY, make), arrays()) and make.calls == 2
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before


def test_a_folder_that_cannot_be_written_still_gives_the_arrays(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    make = Maker()
    assert same(array_cache.cached(blocker / "sub", "toy", KEY, make), arrays())
    assert same(array_cache.cached(blocker / "sub", "toy", KEY, make), arrays()) and make.calls == 2


def test_mnist1d_from_the_cache_is_what_the_package_generates(tmp_path, monkeypatch):
    """Oracle: the mnist1d package's own make_dataset, run here, against the arrays read from a fresh cache."""
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    data.mnist1d_raw.cache_clear()
    try:
        cached = data.mnist1d_raw()
        assert list((tmp_path / "generated").iterdir())
        data.mnist1d_raw.cache_clear()
        again = data.mnist1d_raw()
    finally:
        data.mnist1d_raw.cache_clear()
    generated = data.generate_mnist1d()
    assert same(cached, generated) and same(again, generated)
    assert generated["x"].shape == (4000, 40) and generated["x_test"].shape == (1000, 40)
