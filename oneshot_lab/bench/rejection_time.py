"""Wall time of rejecting bad input from the command line, as a user meets it (a fresh `oneshot-lab` process).

A section of `python -m oneshot_lab.bench rejection_time`, or on its own:
`python -m oneshot_lab.bench.rejection_time [--repeats 3]`.

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
from typing import Any

from . import measure

ROOT = Path(__file__).resolve().parents[2]  # the repository: notebooks are found from it
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


def timings(repeats: int) -> list[dict[str, Any]]:
    """The best of `repeats` wall times of every case, slowest first, with the last line of its message."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, argv in cases(Path(tmp)).items():
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True)
                best = min(best, time.perf_counter() - t0)
                if out.returncode != 2:
                    raise RuntimeError(f"{name}: exit {out.returncode}, expected 2: {out.stderr}")
            rows.append({"case": name, "seconds": round(best, 2),
                         "message": out.stderr.strip().splitlines()[-1][:110]})
    return sorted(rows, key=lambda row: row["seconds"], reverse=True)


def run(quick: bool = False, repeats: int = 3) -> dict[str, Any]:
    """The rejection table (quick: one repeat per case)."""
    repeats = 1 if quick else repeats
    rows = timings(repeats)
    markdown = (f"### Rejecting bad input: wall seconds of a fresh process, best of {repeats}, slowest first\n\n"
                + measure.markdown_table(rows))
    return {"rows": rows, "markdown": markdown}


def main(argv: list[str] | None = None) -> int:
    """Time every case and print the table, slowest first."""
    parser = argparse.ArgumentParser(prog="python -m oneshot_lab.bench.rejection_time",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat per case")
    args = parser.parse_args(argv)
    print(run(args.quick, args.repeats)["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
