"""Wall time of rejecting bad input from the command line, as a user meets it (a fresh `oneshot-lab` process).

Usage: .venv/bin/python benchmarks/rejection_time.py [--repeats 3]

Every case must exit 2 (bad input) before a kernel starts; the table gives the best of `--repeats` wall
times per case, slowest first. The heaviest inputs are here on purpose: a YAML alias bomb, a 10,000-run grid,
a 20-digit seed, a gzip that inflates far beyond what its IDX header declares (read through `ol.load`).
"""

from __future__ import annotations

import argparse
import gzip
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
GRID = ("notebook: 01\ngrid: {seed: [" + ", ".join(map(str, range(100))) + "], lr: ["
        + ", ".join(f"0.{i + 1}" for i in range(100)) + "]}\n")


def cases(tmp: Path) -> dict[str, list[str]]:
    """Name -> command line (after `python -m oneshot_lab`, or a python -c for the IDX case)."""
    (tmp / "bomb.yaml").write_text(BOMB)
    (tmp / "grid.yaml").write_text(GRID)
    (tmp / "dup.yaml").write_text("notebook: 01\ngrid: {seed: [0]}\ngrid: {seed: [1]}\n")
    idx = tmp / "idx"
    idx.mkdir()
    for name, shape in (("train-images-idx3-ubyte", (60000, 28, 28)), ("train-labels-idx1-ubyte", (60000,)),
                        ("t10k-images-idx3-ubyte", (10000, 28, 28)), ("t10k-labels-idx1-ubyte", (10000,))):
        with gzip.open(idx / f"{name}.gz", "wb") as fh:  # every file inflates to 256 MiB more than declared
            fh.write(bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape))
            for _ in range(256 + 47 * (name == "train-images-idx3-ubyte")):
                fh.write(bytes(1 << 20))
    load = f"import oneshot_lab as ol, sys\ntry: ol.load('mnist', root='{idx}')\nexcept ValueError as e: sys.exit(str(e)[:200] + chr(10) + 'exit 2' and 2) if print(e, file=sys.stderr) else sys.exit(2)"
    return {
        "spec alias bomb": ["-m", "oneshot_lab", "sweep", str(tmp / "bomb.yaml"), "--runs", str(tmp / "r")],
        "spec 10,000-run grid": ["-m", "oneshot_lab", "sweep", str(tmp / "grid.yaml"), "--runs", str(tmp / "r")],
        "spec duplicate key": ["-m", "oneshot_lab", "sweep", str(tmp / "dup.yaml"), "--runs", str(tmp / "r")],
        "run -p seed 010": ["-m", "oneshot_lab", "run", "01", "-p", "seed", "010"],
        "run -p seed (20 digits)": ["-m", "oneshot_lab", "run", "01", "-p", "seed", "9" * 20],
        "run -p smoke yes": ["-m", "oneshot_lab", "run", "01", "-p", "smoke", "yes"],
        "run --timeout 0": ["-m", "oneshot_lab", "run", "01", "--timeout", "0"],
        "run --out (not a run record)": ["-m", "oneshot_lab", "run", "01", "--out", str(idx)],
        "IDX gzip bomb (ol.load)": ["-c", load],
    }


def main() -> None:
    """Time every case and print the table, slowest first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, argv in cases(Path(tmp)).items():
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True)
                best = min(best, time.perf_counter() - t0)
                if out.returncode != 2:
                    raise SystemExit(f"{name}: exit {out.returncode}, expected 2: {out.stderr}")
            rows.append((best, name, out.stderr.strip().splitlines()[-1][:110]))
    for best, name, message in sorted(rows, reverse=True):
        print(f"{best:6.2f} s  {name:34}  {message}")


if __name__ == "__main__":
    main()
