"""Shared fixtures: tiny datasets and models so the suite stays fast on 2 cores."""

import gzip
import struct

import numpy as np
import pytest
import torch

import oneshot_lab as ol

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic():
    """The seeded synthetic dataset (fast)."""
    return ol.load("synthetic", seed=0)


@pytest.fixture()
def tiny_mlp(synthetic):
    """A small ReLU MLP for the synthetic dataset."""
    return ol.build("mlp", synthetic, seed=0, widths=(16, 8))


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """Write `array` (uint8) as an IDX file, gzipped if `gz`."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as fh:
        fh.write(data)


@pytest.fixture()
def idx_dir(tmp_path):
    """A tiny MNIST-format directory: image i of train has every pixel = i (so rows are identifiable)."""
    n_train, n_test = 50, 20
    train = np.repeat(np.arange(n_train, dtype=np.uint8)[:, None, None], 28 * 28, 1).reshape(n_train, 28, 28)
    test = np.repeat(np.arange(100, 100 + n_test, dtype=np.uint8)[:, None, None], 28 * 28, 1).reshape(n_test, 28, 28)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(n_train, dtype=np.uint8) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(n_test, dtype=np.uint8) % 10, gz=True)
    return tmp_path
