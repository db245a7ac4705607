"""The bad-input battery: every case is rejected with a one-line message naming the bad value, before any kernel
starts, and nothing under the test's directory is written, lost or changed. Run records that cannot be read
are skipped with one warning naming the file and the reason, never crash a reader and never invent rows."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import signal
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import oneshot_lab as ol
from conftest import write_idx
from oneshot_lab import cli
from oneshot_lab.studies.lottery import rewinding, stability, ticket_study
from oneshot_lab.studies import oneshot
from oneshot_lab.records import integrity, loading, writing
from oneshot_lab.runner import spec, sweep
from oneshot_lab.training import train


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and directory (None) under `root`."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture()
def lab(tmp_path, monkeypatch):
    """A working directory with one complete run record and a good IDX directory; no kernel may start."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    run = writing.start(tmp_path / "runs" / "good", {"seed": 0})
    run.record("metrics", [{"sparsity": 0.5, "acc": 0.9}])
    run.finish()
    writing.start(tmp_path / "demo" / "01_magnitude_pruning", {"seed": 4}).finish()  # another run's, in demo's way
    writing.start(tmp_path / "failed", {"seed": 5}).finish("failed", error="boom")
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "manifest.json").write_text('{"name": "not a run"}')
    (tmp_path / "idx").mkdir()
    n = 20
    write_idx(tmp_path / "idx" / "train-images-idx3-ubyte", np.full((n, 28, 28), 7, dtype=np.uint8))
    write_idx(tmp_path / "idx" / "train-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    write_idx(tmp_path / "idx" / "t10k-images-idx3-ubyte", np.full((4, 28, 28), 7, dtype=np.uint8))
    write_idx(tmp_path / "idx" / "t10k-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    return tmp_path


# ---------------------------------------------------------------- how a case is run

def api(fn) -> str:
    """The one-line ValueError `fn()` raises."""
    with pytest.raises(ValueError) as err:
        fn()
    return str(err.value)


def command(*args: str, code: int = 2, quiet: bool = True) -> str:
    """The stderr of `oneshot-lab ARGS`, which must exit with `code` (and print nothing on stdout if `quiet`)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(list(args))
        except SystemExit as exit_:  # argparse usage errors
            rc = exit_.code
    assert rc == code, err.getvalue()
    assert out.getvalue() == "" or not quiet
    return err.getvalue()


def spec_file(root: Path, text: str | bytes, *args: str, code: int = 2) -> str:
    """`oneshot-lab sweep` on a spec holding `text`: its one-line error (the spec file is then removed)."""
    path = root / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        return command("sweep", str(path), "--runs", str(root / "runs"), *args, code=code)
    finally:
        path.unlink()


def idx(root: Path, part: str, array: np.ndarray, code: int = 0x08) -> str:
    """Replace one IDX file of the lab by `array` (IDX type `code`), load, restore: the one-line error."""
    path = root / "idx" / part
    saved = path.read_bytes()
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0D: ">f4", 0x0E: ">f8"}[code]
    path.write_bytes(header + np.ascontiguousarray(array, dtype=dtype).tobytes())
    try:
        return api(lambda: ol.load("mnist", root=root / "idx"))
    finally:
        path.write_bytes(saved)


def bomb(root: Path, declared: tuple[int, ...], payload: int) -> str:
    """A gzipped IDX file declaring `declared` and holding `payload` zero bytes: read_idx's error."""
    path = root / "bomb.gz"
    header = bytes([0, 0, 0x08, len(declared)]) + struct.pack(f">{len(declared)}I", *declared)
    with gzip.open(path, "wb") as fh:
        fh.write(header)
        for _ in range(payload // (1 << 20)):
            fh.write(bytes(1 << 20))
    try:
        return api(lambda: ol.core.data.read_idx(path))
    finally:
        path.unlink()


def notebook_file(root: Path, change) -> str:
    """`oneshot-lab run` on a copy of notebook 01 changed by `change` (a function of its JSON, or the file's text):
    its one-line error (the notebook file is then removed)."""
    path = root / "bad.ipynb"
    if isinstance(change, (str, bytes)):
        path.write_bytes(change.encode() if isinstance(change, str) else change)
    else:
        data = json.loads(ol.runner.notebooks.resolve_notebook(NB).read_text())
        change(data)
        path.write_text(json.dumps(data))
    try:
        return command("run", str(path))
    finally:
        path.unlink()


def cell(data: dict, tag: str = "parameters") -> dict:
    """The cell of notebook JSON `data` tagged `tag` (the parameters cell)."""
    return next(c for c in data["cells"] if tag in c.get("metadata", {}).get("tags", []))


NB = "01"
GRID = "notebook: 01\ngrid: {seed: [0]}\n"
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))

CASES = {
    # ---- Python API: configs, validators, masks, data, sweeps
    "train lr inf": (lambda r: api(lambda: train.TrainConfig(lr=math.inf)), "lr must be a finite number"),
    "train epochs 2.5": (lambda r: api(lambda: train.TrainConfig(epochs=2.5)), "epochs must be an integer"),
    "train epochs text": (lambda r: api(lambda: train.TrainConfig(epochs="3")), "got '3'"),
    "train batch 1.5": (lambda r: api(lambda: train.TrainConfig(batch_size=1.5)), "batch_size must be an integer"),
    "train seed 20 digits": (lambda r: api(lambda: train.TrainConfig(seed=10**20)), "seed must be an integer in [0,"),
    "train momentum 1.5": (lambda r: api(lambda: train.TrainConfig(momentum=1.5)), "momentum must be a number in"),
    "oneshot sparsity bool": (lambda r: api(lambda: oneshot.OneShotConfig(sparsities=[True])), "got True"),
    "imp rewind bool": (lambda r: api(lambda: rewinding.IMPConfig(rewind_iteration=True)), "rewind_iteration"),
    "imp levels 2.5": (lambda r: api(lambda: rewinding.IMPConfig(levels=2.5)), "levels must be an integer"),
    "model widths 1.7": (lambda r: api(lambda: ol.build("mlp", ol.load("synthetic"), widths=[1.7])), "widths[0]"),
    "instability points bool": (lambda r: api(lambda: stability.InstabilityConfig(points=True)), "points"),
    "study tolerance nan": (lambda r: api(lambda: ticket_study.TicketStudy(match_tolerance=math.nan)),
                            "match_tolerance must be a finite number"),
    "masks sparsity bool": (lambda r: api(lambda: ol.masks_from_scores({"w": torch.ones(4)}, True)), "sparsity"),
    "masks sparsity 1.5": (lambda r: api(lambda: ol.masks_from_scores({"w": torch.ones(4)}, 1.5)), "sparsity"),
    "masks nan scores": (lambda r: api(lambda: ol.masks_from_scores({"w": torch.tensor([math.nan, 1.0])}, 0.5)),
                         "contain NaN"),
    "load seed overflow": (lambda r: api(lambda: ol.load("synthetic", seed=10**20)), "seed must be an integer"),
    "load unknown dataset": (lambda r: api(lambda: ol.load("cifar")), "unknown dataset 'cifar'"),
    "sweep workers 0": (lambda r: api(lambda: sweep.run_grid({"notebook": NB, "grid": {"seed": [0]}}, r / "runs",
                                                             workers=0)), "workers must be an integer in [1, 1024]"),
    "sweep python grid cap": (lambda r: api(lambda: sweep.run_grid({"notebook": NB, "grid": {"seed": list(range(20))}},
                                                                   r / "runs", max_runs=5)), "more than the limit of 5"),
    "api seed parameter": (lambda r: api(lambda: spec.task(NB, {"seed": 2**40})), "must be an integer in [0,"),
    "api set parameter": (lambda r: api(lambda: spec.task(NB, {"methods": {"magnitude/global"}})), "is a set"),
    "api timeout 0": (lambda r: api(lambda: spec.task(NB, {}, timeout=0)), "timeout (seconds per cell) must be"),
    "api nan parameter": (lambda r: api(lambda: spec.task(NB, {"lr": math.nan})), "only finite numbers"),
    # ---- sweep specs
    "spec date": (lambda r: spec_file(r, "notebook: 01\ngrid: {seed: [2024-01-01]}\n"), "must be int, got '2024-01-01'"),
    "spec binary": (lambda r: spec_file(r, "notebook: 01\nparams: {dataset: !!binary aGVsbG8=}\ngrid: {seed: [0]}\n"),
                    "is a bytes"),
    "spec alias bomb": (lambda r: spec_file(r, BILLION_LAUGHS), "expands to more than 100000 values"),
    "spec recursive alias": (lambda r: spec_file(r, "notebook: 01\ngrid: &g {seed: *g}\n"), "recursive alias"),
    "spec huge grid": (lambda r: spec_file(r, "notebook: 01\ngrid: {seed: [" + ", ".join(map(str, range(100)))
                                           + "], lr: [" + ", ".join(f"0.{i + 1}" for i in range(100)) + "]}\n"),
                       "expands to 10000 runs, more than the limit of 1000"),
    "spec over raised cap": (lambda r: spec_file(r, "notebook: 01\ngrid: {seed: [0, 1, 2]}\n", "--max-runs", "2"),
                             "more than the limit of 2"),
    "spec duplicate key": (lambda r: spec_file(r, "notebook: 01\ngrid: {seed: [0]}\ngrid: {seed: [1]}\n"),
                           "duplicate key 'grid'"),
    "spec octal": (lambda r: spec_file(r, "notebook: 01\ngrid: {seed: [010]}\n"), "leading zeros"),
    "spec yes": (lambda r: spec_file(r, "notebook: 01\ngrid: {smoke: [yes]}\n"), "write true or false"),
    "spec notebook 010": (lambda r: spec_file(r, "notebook: 010\ngrid: {seed: [0]}\n"), "no notebook '010'"),
    "spec inf": (lambda r: spec_file(r, "notebook: 01\ngrid: {lr: [.inf]}\n"), "must be float, got '.inf'"),
    "spec number key": (lambda r: spec_file(r, "notebook: 01\ngrid: {1: [0]}\n"), "key 1 is not text"),
    "spec not utf8": (lambda r: spec_file(r, b"notebook: 01\ngrid: {seed: [0]}\n# \xff\xfe\n"), "not UTF-8"),
    "spec list": (lambda r: spec_file(r, "- notebook: 01\n"), "a sweep spec is a mapping"),
    "spec timeout 0": (lambda r: spec_file(r, GRID + "timeout: 0\n"), "timeout (seconds per cell) must be an integer in [1, 604800]"),
    "spec python object": (lambda r: spec_file(r, "notebook: !!python/name:os.system 01\n"), "not valid YAML"),
    # ---- the command line
    "cli seed 010": (lambda r: command("run", NB, "-p", "seed", "010"), "leading zeros are not read as a number"),
    "cli smoke yes": (lambda r: command("run", NB, "-p", "smoke", "yes"), "write true or false"),
    "cli seed 20 digits": (lambda r: command("run", NB, "-p", "seed", "9" * 20), "must be an integer in [0,"),
    "cli lr inf": (lambda r: command("run", NB, "-p", "lr", "inf"), "parameter 'lr'"),
    "cli lr negative": (lambda r: command("run", NB, "-p", "lr", "-1"), "lr must be a number > 0.0, got -1.0"),
    "cli epochs negative": (lambda r: command("run", NB, "-p", "finetune_epochs", "-5"), "finetune_epochs must be an"),
    "cli sparsity 1.5": (lambda r: command("run", NB, "-p", "sparsities", "[0.5, 1.5]"), "sparsities[1] must be"),
    "cli batch size 0": (lambda r: command("run", NB, "-p", "batch_size", "0"), "batch_size must be an integer in [1, 1048576]"),
    "cli widths 1.7": (lambda r: command("run", "03", "-p", "widths", "[1.7]"), "widths[0] must be an integer"),
    "cli rate 1.5": (lambda r: command("run", "03", "-p", "rate", "1.5"), "rate must be a number in [0.0, 1.0]"),
    "cli timeout 0": (lambda r: command("run", NB, "--timeout", "0"), "timeout (seconds per cell) must be an integer in [1, 604800]"),
    "cli timeout -1": (lambda r: command("run", NB, "--timeout", "-1"), "must be an integer in [1, 604800], got -1"),
    "cli parameter twice": (lambda r: command("run", NB, "-p", "seed", "1", "-p", "seed", "2"), "given twice"),
    "cli binary value": (lambda r: command("run", NB, "-p", "dataset", "!!binary aGk="), "is a bytes"),
    "cli unknown notebook": (lambda r: command("run", "99"), "no notebook '99'"),
    "cli out not a record": (lambda r: command("run", NB, "--out", str(r / "idx")), "is not a run record"),
    "cli out holds another run": (lambda r: command("run", NB, "--out", str(r / "runs" / "good")),
                                  "holds a complete record of another run"),
    "cli out holds a failed run": (lambda r: command("run", NB, "--out", str(r / "failed")),
                                   "holds a failed or unfinished record of another run"),
    "cli out another manifest.json": (lambda r: command("run", NB, "--out", str(r / "webapp"), "--force"),
                                      "is not a run record"),
    "cli report out holds another run": (lambda r: command("report", str(r / "runs"), "--out", str(r / "failed")),
                                         "holds a failed or unfinished record of another run"),
    "cli report out not a record": (lambda r: command("report", str(r / "runs"), "--out", str(r / "idx"),
                                                      "--force"), "is not a run record"),
    "cli demo over another run": (lambda r: command("demo", "--smoke", "--out", str(r / "demo")),
                                  "demo/01_magnitude_pruning holds a complete record of another run"),
    "cli demo into a record": (lambda r: command("demo", "--smoke", "--out", str(r / "runs" / "good"), "--force"),
                               "good is a run record: the demo writes one record per notebook"),
    "cli demo into a file": (lambda r: command("demo", "--smoke", "--out", str(r / "idx" / "t10k-labels-idx1-ubyte")),
                             "t10k-labels-idx1-ubyte is not a directory"),
    "cli run out empty": (lambda r: command("run", NB, "--out", ""), "the output directory is empty"),
    "cli run inside a record": (lambda r: command("run", NB, "--out", str(r / "runs" / "good" / "sub")),
                                "lies inside the run record"),
    "cli sweep runs a record": (lambda r: command("sweep", "sweeps/compare_criteria.yaml", "--runs",
                                                  str(r / "runs" / "good")), "is or lies inside the run record"),
    "cli dataset unknown": (lambda r: command("run", NB, "-p", "dataset", "bogus"), "unknown dataset 'bogus'"),
    "cli methods empty": (lambda r: command("run", NB, "-p", "methods", "[]"),
                          "parameter 'methods' of 01_magnitude_pruning.ipynb must name at least one method, got []"),
    "cli name too long": (lambda r: command("run", NB, "--out", str(r / ("x" * 300)), code=3), "File name too long"),
    "cli sweep workers 0": (lambda r: command("sweep", "sweeps/x.yaml", "--workers", "0"), "--workers: must be"),
    "cli report nothing": (lambda r: command("report", str(r / "idx")), "no complete run records"),
    # ---- IDX files
    "idx label -1": (lambda r: idx(r, "train-labels-idx1-ubyte", -np.ones(20), 0x09), "found 20 outside (e.g. -1)"),
    "idx label 255": (lambda r: idx(r, "t10k-labels-idx1-ubyte", np.full(4, 255), 0x08), "in [0, 10)"),
    "idx float labels": (lambda r: idx(r, "t10k-labels-idx1-ubyte", np.zeros(4), 0x0D), "not integers"),
    "idx nan pixels": (lambda r: idx(r, "train-images-idx3-ubyte", np.full((20, 28, 28), np.nan), 0x0D), "NaN"),
    "idx empty train": (lambda r: idx(r, "train-images-idx3-ubyte", np.zeros((0, 28, 28)), 0x08), "do not match"),
    "idx bomb declared": (lambda r: bomb(r, (2000, 1000, 1000), 0), "more than the limit of"),
    "idx bomb payload": (lambda r: bomb(r, (10, 28, 28), 64 << 20), "holds more than 7840 bytes"),
}


BIG = "9" * 400  # an integer no float holds
CASES |= {
    # ---- numbers beyond a float, counts beyond their limit, seeds derived beyond the seeds (issue 24)
    "cli lr 400 digits": (lambda r: command("run", NB, "-p", "lr", BIG), "lr must be a finite number, got an integer "
                                                                          "of 400 digits"),
    "cli sparsity 400 digits in a list": (lambda r: command("run", NB, "-p", "sparsities", f"[0.5, {BIG}]"),
                                          "sparsities[1] must be a finite number in [0.0, 1.0], got an integer of 400"),
    "spec lr 400 digits": (lambda r: spec_file(r, f"notebook: 01\ngrid: {{lr: [{BIG}]}}\n"), "got an integer of 400"),
    "spec 5000 digits": (lambda r: spec_file(r, f"notebook: 01\ngrid: {{seed: [{'9' * 5000}]}}\n"),
                         "an integer of 5000 digits; at most 4000 are read"),
    "api lr 400 digits": (lambda r: api(lambda: train.TrainConfig(lr=int(BIG))), "lr must be a finite number > 0.0"),
    "cli iterations 10**30": (lambda r: command("run", NB, "-p", "iterations", str(10**30)),
                              "iterations must be an integer in [0, 100000000], got 1" + "0" * 30),
    "cli batch size 10**30": (lambda r: command("run", "03", "-p", "batch_size", str(10**30)),
                              "batch_size must be an integer in [1, 1048576]"),
    "cli levels 10**30": (lambda r: command("run", "03", "-p", "levels", str(10**30)), "levels must be an integer in "
                                                                                       "[0, 100]"),
    "cli timeout 10**20": (lambda r: command("run", NB, "--timeout", str(10**20)), "must be an integer in [1, 604800]"),
    "cli workers 10**5": (lambda r: command("sweep", "sweeps/x.yaml", "--workers", "100000"), "(at most 1024)"),
    "cli max runs 10**12": (lambda r: command("sweep", "sweeps/x.yaml", "--max-runs", str(10**12)), "at most 1000000"),
    "api workers 10**5": (lambda r: api(lambda: sweep.run_grid({"notebook": NB, "grid": {"seed": [0]}}, r / "runs",
                                                               workers=10**5)), "workers must be an integer in [1, 1024]"),
    "api train iterations 10**30": (lambda r: api(lambda: train.TrainConfig(iterations=10**30)),
                                    "iterations must be an integer in [0, 100000000]"),
    "cli seed 2**32-1 with offsets": (lambda r: command("run", NB, "-p", "seed", "4294967295"),
                                      "seed 4294967295 + replicate offset 4 = 4294967299 is more than 4294966295"),
    "cli seeds beyond the base seed": (lambda r: command("run", "03", "-p", "seed", "4294966000", "-p", "seeds",
                                                         "[0, 300]"), "replicate offset 300 = 4294966300 is more"),
    "api ticket data-order seed": (lambda r: api(lambda: ticket_study.TicketStudy(seed=4294967294, seed_offsets=(0,))),
                                   "data-order seed of replicate seed 4294967294"),
    # ---- nested options checked like top-level ones
    "cli model_options widths 1.5": (lambda r: command("run", NB, "-p", "model", "mlp", "-p", "model_options",
                                                       "{widths: [1.5]}"),
                                     "parameter 'model_options' of 01_magnitude_pruning.ipynb: widths[0] must be an "
                                     "integer in [1, 100000], got 1.5"),
    "cli model_options unknown": (lambda r: command("run", NB, "-p", "model_options", "{widths: [8]}"),
                                  "model 'conv1d' has no option 'widths'; its options: channels, activation"),
    "cli method_options samples 1.5": (lambda r: command("run", NB, "-p", "method_options", "{taylor: {samples: 1.5}}"),
                                       "parameter 'method_options' of 01_magnitude_pruning.ipynb: score_options['taylor']"
                                       ": samples must be an integer in [1, 10000000], got 1.5"),
    "cli unknown model": (lambda r: command("run", NB, "-p", "model", "resnet"), "unknown model 'resnet'; valid choices"),
    "api setting model_options": (lambda r: api(lambda: ol.studies.second_order.Setting(model_options={"widths": [0]})),
                                  "widths[0] must be an integer in [1, 100000], got 0"),
    # ---- malformed notebooks and specs: one line, exit 2, no staging directory left
    "notebook cells 5": (lambda r: notebook_file(r, '{"cells": 5}'), "not a notebook ('cells' is int, not a list)"),
    "notebook metadata a list": (lambda r: notebook_file(r, lambda d: d.update(metadata=[])),
                                 "not a notebook ('metadata' is list, not a mapping)"),
    "notebook cell metadata a list": (lambda r: notebook_file(r, lambda d: d["cells"][0].update(metadata=[])),
                                      "cell 0 has metadata list, not a mapping"),
    "notebook 100k deep": (lambda r: notebook_file(r, '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                           "its JSON nests too deeply"),
    "notebook source 7": (lambda r: notebook_file(r, lambda d: cell(d).update(source=7)),
                          "has source 7, not text or a list of lines"),
    "notebook cell without cell_type": (lambda r: notebook_file(r, lambda d: d["cells"][-1].pop("cell_type")),
                                        "has cell_type None, not one of code, markdown, raw"),
    "notebook outputs [5]": (lambda r: notebook_file(r, lambda d: d["cells"][-1].update(outputs=[5])),
                             "not a notebook (outputs/0: 5 is not of type 'object')"),
    "notebook kernelspec a list": (lambda r: notebook_file(r, lambda d: d["metadata"].update(kernelspec=[])),
                                   "metadata/kernelspec: [] is not of type 'object'"),
    "notebook version 3": (lambda r: notebook_file(r, lambda d: d.update(nbformat=3)), "version 3.5: nbformat 4 notebooks only"),
    "notebook not utf8": (lambda r: notebook_file(r, b'{"cells": "\xff"}'), "not a notebook (not JSON"),
    "spec NUL byte": (lambda r: spec_file(r, b"notebook: 01\ngrid: {seed: [0]}\n# \x00\n"),
                      "not valid YAML: unacceptable character #x0000"),
    # ---- IDX content: finite as float32, real images, two classes; decompression within this machine's cap
    "idx pixels 1e300": (lambda r: idx(r, "train-images-idx3-ubyte", np.full((20, 28, 28), 1e300), 0x0E),
                         "train images hold 15680 pixels beyond float32 once scaled by 1/255 (largest 1e+300)"),
    "idx images 0 x 0": (lambda r: idx(r, "train-images-idx3-ubyte", np.zeros((20, 0, 0)), 0x08),
                         "train images are 0 x 0 pixels; an image needs at least one"),
    "idx one class": (lambda r: idx(r, "train-labels-idx1-ubyte", np.zeros(20), 0x08),
                      "every train label is 0; a classifier needs at least two classes"),
    "idx bomb over this machine's cap": (lambda r: bomb(r, (ol.core.data.idx_cap() // 784 + 1, 28, 28), 0),
                                         "bytes), more than the limit of"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_before_any_work_and_changes_nothing(name, lab):
    case, expected = CASES[name]
    before = snapshot(lab)
    message = case(lab)
    assert expected in message, message
    assert len(message.strip().splitlines()) == 1 and "Traceback" not in message, message
    assert snapshot(lab) == before, "a bad input wrote, removed or changed a file"


def test_the_battery_is_large_enough():
    assert len(CASES) + len(RECORDS) >= 40


# ---------------------------------------------------------------- records that cannot be read

FIFO, DIRECTORY = "a FIFO", "a directory"  # put in place of a record's file
RECORDS = {
    "manifest is a list": ({"manifest.json": b"[]"}, "the manifest is list, not a mapping"),
    "manifest is null": ({"manifest.json": b"null"}, "the manifest is null"),
    "params is text": ({"manifest.json": json.dumps({"status": "complete", "params": "seed=1"}).encode()},
                       "'params' is str, not a mapping"),
    "manifest not json": ({"manifest.json": b'{"status": "compl'}, "not valid JSON"),
    "manifest binary": ({"manifest.json": b"\x00\xff\x10"}, "not valid JSON"),
    "empty csv": ({"metrics.csv": b""}, "the file is empty"),
    "binary csv": ({"metrics.csv": b"sparsity,acc\n\x00\x01\x02\n"}, "binary data"),
    "ragged csv": ({"metrics.csv": b"sparsity,acc\n0.5,0.9,7\n0.9\n"}, "ragged: line 2 has 3 fields"),
    "cut csv": ({"metrics.csv": b"sparsity,acc\n0.5,0.9\n0.9,0.8"}, "cut short"),
    "missing csv": ({"metrics.csv": None}, "the manifest lists this table but the file is missing"),
    "csv header repeats a column": ({"metrics.csv": b"sparsity,sparsity\n0.5,0.1\n"},
                                    "the header repeats column 'sparsity'"),
    "manifest is a FIFO": ({"manifest.json": FIFO}, "not a regular file (a FIFO), left unopened"),
    "csv is a FIFO": ({"metrics.csv": FIFO}, "not a regular file (a FIFO), left unopened"),
    "csv is a directory": ({"metrics.csv": DIRECTORY}, "not a regular file (a directory), left unopened"),
}


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging) if the block takes longer than `seconds`."""
    def expired(*_):
        raise TimeoutError(f"still blocked after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", list(RECORDS))
def test_an_unreadable_record_is_skipped_with_one_warning_and_nothing_else_is_lost(name, lab):
    files, reason = RECORDS[name]
    bad = writing.start(lab / "runs" / "bad", {"seed": 1})
    bad.record("metrics", [{"sparsity": 0.5, "acc": 0.1}])
    bad.finish()
    for file, content in files.items():
        if content is None:
            (lab / "runs" / "bad" / file).unlink()
        elif content == FIFO:
            (lab / "runs" / "bad" / file).unlink()
            os.mkfifo(lab / "runs" / "bad" / file)
        elif content == DIRECTORY:
            (lab / "runs" / "bad" / file).unlink()
            (lab / "runs" / "bad" / file).mkdir()
        else:
            (lab / "runs" / "bad" / file).write_bytes(content)
    before = snapshot(lab)
    with warnings.catch_warnings(record=True) as caught, deadline(20):
        warnings.simplefilter("always")
        table = loading.load(lab / "runs")
    ours = [w for w in caught if issubclass(w.category, integrity.RecordWarning)]
    named = str(lab / "runs" / "bad" / next(iter(files)))
    assert len(ours) == 1 and f"{named}: {reason}" in str(ours[0].message)
    assert list(table.acc) == [0.9] and list(table.run) == ["good"]  # the good record, no invented rows
    assert [s["run"] for s in table.attrs["skipped"]] == ["bad"] and reason in table.attrs["skipped"][0]["reason"]
    with warnings.catch_warnings(), deadline(20):
        warnings.simplefilter("ignore")
        listed = loading.manifests(lab / "runs")
        assert command("sweep", "sweeps/compare_criteria.yaml", "--runs", str(lab / "runs"), "--dry-run",
                       code=0, quiet=False) == ""
    if "manifest" in name or "params" in name:
        assert listed.set_index("run").loc["bad", "status"] == "unreadable"
    assert snapshot(lab) == before
