"""What every benchmark needs: interleaved medians, peak resident memory in a fresh process, the machine, output files."""

from __future__ import annotations

import functools
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

MEMORY_METHOD = ("peak resident set (VmHWM, reset through /proc/self/clear_refs) minus the resident set "
                 "just before the call, in a fresh Python process per measurement")


@functools.lru_cache(maxsize=None)
def dataset(name: str):
    """`oneshot_lab.load(name, seed=0)`, loaded once per process."""
    import oneshot_lab as ol

    return ol.load(name, seed=0)


# CPU seconds (user + system) of this process: on a shared machine, waiting for a core is not counted.
CLOCK = time.process_time
CLOCK_NAME = "process CPU time (user + system) of the measuring process"


def interleaved(calls: Mapping[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds of every call, repeated `repeats` times in turn (a, b, a, b, ...), so load affects all alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = CLOCK()
            call()
            times[name].append(CLOCK() - start)
    return times


def medians(times: Mapping[str, list[float]]) -> dict[str, float]:
    """The median of every list of seconds."""
    return {name: statistics.median(values) for name, values in times.items()}


def rss_bytes() -> int:
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak() -> bool:
    """Reset this process's peak resident set to its current size (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    """Peak resident set size of this process (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def peak_growth(target: str, threads: int = 1, **kwargs: Any) -> int:
    """Bytes of peak-memory growth of one call, measured in a fresh process.

    `target` is 'module:function'; the function is called with `kwargs`, does its set-up and returns a
    zero-argument callable; only that callable's run is measured.
    """
    code = "import sys; from oneshot_lab.bench.measure import child; child(sys.argv[1], sys.argv[2])"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", code, target, json.dumps({"threads": threads, **kwargs})],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement of {target} failed:\n{done.stderr[-2000:]}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["growth"])


def child(target: str, arguments: str) -> None:
    """Body of the measuring process: set up, reset the peak, run once, print the growth as JSON."""
    import gc

    import torch

    kwargs = json.loads(arguments)
    torch.set_num_threads(kwargs.pop("threads"))
    module, _, function = target.partition(":")
    call = getattr(importlib.import_module(module), function)(**kwargs)
    gc.collect()
    if not reset_peak():
        raise OSError("cannot reset the peak resident set (/proc/self/clear_refs)")
    before = rss_bytes()
    call()
    print(json.dumps({"growth": max(0, peak_bytes() - before)}))


def machine(threads: int) -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "platform": platform.platform(),
            "load_average_at_start": list(os.getloadavg()),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "memory_method": MEMORY_METHOD,
            "clock": CLOCK_NAME}


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A GitHub markdown table of `rows` (numbers printed as given: format them before)."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    cell = lambda value: "" if value is None else str(value)
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write(out_dir: str | os.PathLike, name: str, payload: dict[str, Any], markdown: str) -> Path:
    """Write `<name>.json` and `<name>.md` under `out_dir`; returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    return path


def ratio(value: float, reference: float) -> float:
    """value / reference, rounded to 3 decimals."""
    return round(value / reference, 3)
