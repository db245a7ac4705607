"""Shared fixtures: tiny datasets and models so the suite stays fast on 2 cores."""

import fcntl
import gzip
import json
import os
import shutil
import struct
from typing import Callable

import numpy as np
import pytest
import torch

import oneshot_lab as ol

torch.set_num_threads(1)
os.environ.setdefault("ONESHOT_LAB_WORKERS", "1")  # per-seed work in-process in tests (tests choose workers=2 explicitly)
os.environ["ONESHOT_LAB_CACHE"] = "off"  # every test trains what it checks (test_fit_cache turns the cache on)



@pytest.fixture(scope="session")
def synthetic():
    """The seeded synthetic dataset (fast)."""
    return ol.load("synthetic", seed=0)


@pytest.fixture()
def tiny_mlp(synthetic):
    """A small ReLU MLP for the synthetic dataset."""
    return ol.build("mlp", synthetic, seed=0, widths=(16, 8))


@pytest.fixture(scope="session")
def tanh_mlp(synthetic):
    """A tanh MLP 20-12-8-4 for the synthetic dataset: no dead units, so damp=0 reconstruction curvatures are invertible."""
    return ol.build("mlp", synthetic, seed=1, widths=(12, 8), activation="tanh")


@pytest.fixture()
def mlp(synthetic):
    """A one-hidden-layer MLP (20-32-4) for the synthetic dataset."""
    return ol.build("mlp", synthetic, seed=0, widths=(32,))


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


TINY_PARAMETERS = """\
x: int = 0  # a number the run records
fail: bool = False  # raise in the second cell
sleep: float = 0.0  # seconds to sleep before recording
deaths: int = 0  # kill the kernel (or its worker) on this many attempts, counted in the file counter
counter: str = ""  # file counting the deaths
victim: str = "kernel"  # kernel or worker (the process running papermill)
out_dir: str = "out"  # where metrics.csv goes"""

TINY_WORK = """\
import os, pathlib, time
if deaths and (not os.path.exists(counter) or len(open(counter).read()) < deaths):
    open(counter, "a").write("x")
    os.kill(os.getppid() if victim == "worker" else os.getpid(), 9)
time.sleep(sleep)
if fail:
    raise ValueError(f"x is {x}")"""

TINY_RECORD = """\
pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(out_dir, "metrics.csv").write_text(f"x,y\\n{x},{x * x}\\n")"""


def write_notebook(path, parameters: str, *cells: str):
    """Write a python3 notebook: a cell tagged `parameters` with `parameters`, then one code cell per entry of `cells`."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="session")
def tiny_notebook(tmp_path_factory):
    """A notebook that starts fast (no torch): records x and x², can fail, sleep or kill its kernel."""
    return write_notebook(tmp_path_factory.mktemp("nb") / "tiny.ipynb", TINY_PARAMETERS, TINY_WORK, TINY_RECORD)


@pytest.fixture()
def notebook_factory(tmp_path):
    """A function writing a notebook named `name` in tmp_path from its parameters cell and code cells."""
    return lambda name, parameters, *cells: write_notebook(tmp_path / name, parameters, *cells)


@pytest.fixture()
def float64_data():
    """A tiny float64 classification set (6 features, 3 classes) with distinct val / test splits."""
    from oneshot_lab.core.data import Dataset, Split

    gen = torch.Generator().manual_seed(0)
    n = 64
    x = torch.randn(n + 32, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(3, (n + 32,), generator=gen)
    return Dataset("tiny", Split(x[:n], y[:n]), Split(x[n:n + 16], y[n:n + 16]), Split(x[n + 16:], y[n + 16:]), 3)


@pytest.fixture()
def float64_mlp():
    """A factory of 6-8-3 float64 MLPs: float64_mlp(activation="tanh", seed=0)."""
    from torch import nn

    def make(activation: str = "tanh", seed: int = 0) -> nn.Sequential:
        gen = torch.Generator().manual_seed(seed)
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        model = nn.Sequential(nn.Linear(6, 8), act(), nn.Linear(8, 3)).double()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.empty_like(p).uniform_(-0.4, 0.4, generator=gen))
        return model
    return make


def built_once(tmp_path_factory, name: str, build: Callable) -> dict:
    """`build(folder)`'s JSON result, built into `folder` once per test run however many xdist workers ask for it
    (the others wait for it and read the same folder); a failed build leaves nothing behind."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / name, shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                result = build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            done.write_text(json.dumps(result))
        return json.loads(done.read_text())


# The files whose tests take tens of seconds (notebooks, sweeps, kernels, the browser): collected first, so the
# xdist workers share them from the start instead of one of them finishing the suite alone.
SLOW_FIRST = ("test_sweep.py", "test_notebooks.py", "test_faults.py", "test_plugins.py", "test_browser.py",
              "test_docs_site.py", "test_bench.py")


def pytest_collection_modifyitems(session, config, items):
    """Put the tests of `SLOW_FIRST` before the rest, each file's order kept."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
