"""Datasets: offline sources, splits, determinism, IDX parsing, clear errors."""

import os
import random
import shutil

import numpy as np
import pytest
import torch

import oneshot_lab as ol
from conftest import write_idx


@pytest.mark.parametrize("name,shape,classes", [("mnist1d", (1, 40), 10), ("digits", (1, 8, 8), 10),
                                                 ("synthetic", (20,), 4)])
def test_offline_sources_have_float32_splits(name, shape, classes):
    data = ol.load(name)
    assert data.input_shape == shape and data.num_classes == classes
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert len(x) == len(y) > 0 and x.shape[1:] == shape
    assert len(data.val.y) == round(0.1 * (len(data.train.y) + len(data.val.y)))


def test_mnist1d_leaves_global_random_state_alone():
    np.random.seed(123); random.seed(123); torch.manual_seed(123)
    expected = (np.random.rand(), random.random(), torch.rand(1).item())
    np.random.seed(123); random.seed(123); torch.manual_seed(123)
    ol.load("mnist1d", seed=5)
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expected


def test_same_seed_same_split_other_seed_other_split_same_test():
    a, b, c = ol.load("digits", seed=0), ol.load("digits", seed=0), ol.load("digits", seed=1)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.val.x, c.val.x)
    # the same test examples, standardised with each seed's own training split
    assert torch.equal(a.test.y, c.test.y)
    scale = a.test.x.std() / c.test.x.std()
    torch.testing.assert_close(a.test.x - a.test.x.mean(), scale * (c.test.x - c.test.x.mean()), atol=1e-5, rtol=0)


def test_standardised_with_the_training_split_only():
    data = ol.load("digits", seed=2)
    assert abs(data.train.x.double().mean().item()) < 1e-6
    assert abs(data.train.x.double().std(unbiased=False).item() - 1) < 1e-5
    assert abs(data.val.x.double().mean().item()) > 1e-4  # validation did not enter the statistics


def test_mnist_subset_is_real_mnist_offline_with_a_balanced_fixed_test_set():
    a, b = ol.load("mnist_subset", seed=0), ol.load("mnist_subset", seed=1)
    assert a.input_shape == (1, 28, 28) and a.num_classes == 10
    assert (len(a.train.y), len(a.val.y), len(a.test.y)) == (3600, 400, 1000)
    assert torch.equal(a.test.y.bincount(), torch.full((10,), 100))
    assert torch.equal(a.test.y, b.test.y) and not torch.equal(a.val.y, b.val.y)


def test_idx_splits_are_disjoint_and_cover_train(idx_dir):
    data = ol.load("mnist", root=idx_dir, seed=3)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    # every image is constant, so its first pixel identifies its row in the original file
    ident = lambda x: set(np.round(x[:, 0, 0, 0].numpy(), 4))
    train, val, test = ident(data.train.x), ident(data.val.x), ident(data.test.x)
    assert len(train) + len(val) == 50 and not train & val and not (train | val) & test
    assert len(data.val.y) == 5 and len(data.test.y) == 20


def test_fashion_mnist_reads_the_same_format(idx_dir):
    assert ol.load("fashion_mnist", root=idx_dir).name == "fashion_mnist"


def test_idx_data_default_to_the_labs_data_directory_and_root_wins(idx_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ONESHOT_LAB_DATA", str(tmp_path / "lab"))
    (tmp_path / "lab").mkdir()
    shutil.copytree(idx_dir, tmp_path / "lab" / "mnist", ignore=shutil.ignore_patterns("lab"))
    assert len(ol.load("mnist").test.y) == 20
    other = tmp_path / "other"
    other.mkdir()
    for stem, n in (("train", 30), ("t10k", 10)):
        write_idx(other / f"{stem}-images-idx3-ubyte", np.zeros((n, 28, 28), dtype=np.uint8))
        write_idx(other / f"{stem}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    assert len(ol.load("mnist", root=other).test.y) == 10
    assert ol.core.data.data_directory() == tmp_path / "lab"
    monkeypatch.delenv("ONESHOT_LAB_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert ol.core.data.data_directory() == tmp_path / "xdg" / "oneshot_lab"


def test_read_idx_roundtrip_gz_and_plain(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", arr)
    write_idx(tmp_path / "b.gz", arr, gz=True)
    assert np.array_equal(ol.core.data.read_idx(tmp_path / "a"), arr)
    assert np.array_equal(ol.core.data.read_idx(tmp_path / "b.gz"), arr)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*mnist1d.*digits.*synthetic"):
        ol.load("cifar")


def test_idx_errors_are_clear(tmp_path, idx_dir, monkeypatch):
    monkeypatch.setenv("ONESHOT_LAB_DATA", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"no complete copy in .*empty/mnist .*run `oneshot-lab data mnist`.*pass root=DIR"):
        ol.load("mnist")
    with pytest.raises(ValueError, match="empty/fashion_mnist .*: pass root=DIR"):
        ol.load("fashion_mnist")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ol.load("mnist", root=tmp_path / "nope")
    (idx_dir / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        ol.load("mnist", root=idx_dir)


def test_corrupt_idx_files_are_rejected(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x56\x78rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        ol.core.data.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "trunc", np.zeros((4, 2, 2), dtype=np.uint8))
    (tmp_path / "trunc").write_bytes((tmp_path / "trunc").read_bytes()[:-3])
    with pytest.raises(ValueError, match="promises shape"):
        ol.core.data.read_idx(tmp_path / "trunc")
    (tmp_path / "badgz.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot read IDX"):
        ol.core.data.read_idx(tmp_path / "badgz.gz")
    write_idx(tmp_path / "flipped.gz", np.arange(256, dtype=np.uint8).reshape(4, 8, 8), gz=True)
    raw = bytearray((tmp_path / "flipped.gz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # corrupt the deflate stream (zlib.error, not OSError)
    (tmp_path / "flipped.gz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="cannot read IDX file .*flipped.gz"):
        ol.core.data.read_idx(tmp_path / "flipped.gz")


def test_mismatched_image_and_label_counts(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match="do not match"):
        ol.load("mnist", root=idx_dir)


def test_bad_split_name(synthetic):
    with pytest.raises(ValueError, match="valid splits: train, val, test"):
        synthetic.split("validation")


def test_constant_idx_images_standardise_without_nan(tmp_path):
    for stem, n in (("train", 30), ("t10k", 10)):
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte", np.full((n, 28, 28), 200, dtype=np.uint8))
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    data = ol.load("mnist", root=tmp_path)
    for split in ("train", "val", "test"):
        assert torch.isfinite(data.split(split).x).all() and data.split(split).x.abs().max() == 0


def test_idx_reads_no_more_than_the_header_declares(tmp_path):
    import gzip

    with gzip.open(tmp_path / "big.gz", "wb") as fh:
        fh.write(bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big") + bytes(8 << 20))
    with pytest.raises(ValueError, match="promises shape .3,. .3 bytes of data. but the file holds more than 3 bytes"):
        ol.core.data.read_idx(tmp_path / "big.gz")
    write_idx(tmp_path / "huge", np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="more than the limit of 3 bytes"):
        ol.core.data.read_idx(tmp_path / "huge", max_bytes=3)


def test_the_idx_cap_is_sized_to_the_machine(monkeypatch):
    data = ol.core.data
    for memory, cap in ((4 << 30, 64 << 20), (24 << 30, (24 << 30) // (17 * 8)), (1 << 40, 1 << 30)):
        monkeypatch.setattr(data, "memory_bytes", lambda memory=memory: memory)
        assert data.idx_cap() == cap  # loading peaks at 17x the payload: 1/8 of memory, in [64 MiB, 1 GiB]
    monkeypatch.undo()
    assert 0 < data.memory_bytes() <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_a_small_gzip_declaring_more_than_the_cap_is_refused_after_its_header(tmp_path, monkeypatch):
    import gzip
    import time

    # issue 24: 2.3 MB of gzip declaring 512 MiB took 56 s and 8.7 GiB; on a 24 GiB machine the cap is 189 MB
    monkeypatch.setattr(ol.core.data, "memory_bytes", lambda: 24 << 30)
    with gzip.open(tmp_path / "bomb.gz", "wb") as fh:
        fh.write(bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (684_784, 28, 28)) + bytes(1 << 20))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"\(684784, 28, 28\) \(536870656 bytes\), more than the limit of 189483851 bytes"):
        ol.core.data.read_idx(tmp_path / "bomb.gz")
    assert time.perf_counter() - started < 1.0


def test_idx_pixels_that_overflow_float32_when_standardised_are_refused(tmp_path):
    images = np.full((30, 2, 2), 8.5e40)  # finite as float32 once scaled (3.3e38), but x - mean overflows
    images[0, 0, 0] = -8.5e40
    for stem, array, code in (("train-images-idx3-ubyte", images, 0x0E), ("t10k-images-idx3-ubyte", images[:10], 0x0E),
                              ("train-labels-idx1-ubyte", np.arange(30) % 10, 0x08),
                              ("t10k-labels-idx1-ubyte", np.arange(10), 0x08)):
        header = bytes([0, 0, code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
        (tmp_path / stem).write_bytes(header + array.astype(">f8" if code == 0x0E else np.uint8).tobytes())
    with pytest.raises(ValueError, match="mnist: inputs are not finite once standardised in float32"):
        ol.load("mnist", root=tmp_path)


def test_mnist1d_is_generated_once_per_process_and_no_two_loads_share_memory():
    from oneshot_lab.core import data as data_module

    first = ol.load("mnist1d", seed=0)
    misses = data_module.mnist1d_raw.cache_info().misses
    second = ol.load("mnist1d", seed=1)
    assert data_module.mnist1d_raw.cache_info().misses == misses  # the canonical arrays were not generated again
    assert not torch.equal(first.val.y, second.val.y)  # the seed still draws the validation split
    first.test.y[0] += 1
    assert not torch.equal(first.test.y, ol.load("mnist1d", seed=0).test.y)
