"""The machine a run ran on: CPU model, floating-point instruction sets, cores, and torch's build and threads.

Across machines the floating-point kernels differ (the issue that made results move between two CPUs), so every
run's manifest carries this, and `oneshot-lab compare` shows where two runs' machines differ.
"""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

# instruction-set flags that change which floating-point kernels run (x86 /proc/cpuinfo and Arm names)
FLOAT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
               "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
               "asimd", "asimdhp", "sve", "sve2")
BUILD_SETTINGS = ("BLAS_INFO", "LAPACK_INFO", "USE_MKL", "USE_MKLDNN", "USE_OPENMP")  # from torch.__config__.show()
LIBRARIES = {"mkl_version": r"Math Kernel Library Version ([\d.]+)", "onednn_version": r"(?:MKL-DNN|oneDNN) (v\S+)",
             "openmp": r"OpenMP (\d+)"}


def cpu(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's model name and which of `FLOAT_FLAGS` it has (from /proc/cpuinfo; platform's names without it)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.split("\n\n")[0].splitlines():  # the first processor: all cores of a CPU say the same
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or fields.get("Hardware") or platform.processor() or platform.machine()
    present = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"cpu_model": model, "cpu_flags": [f for f in FLOAT_FLAGS if f in present],
            "architecture": platform.machine(), "logical_cores": os.cpu_count()}


def torch_build(config: str) -> dict[str, str]:
    """The BLAS, LAPACK, MKL, oneDNN and OpenMP of a torch build, read from `torch.__config__.show()`."""
    settings = dict(re.findall(r"(\w+)=([^,\n]*)", config.split("Build settings:")[-1]))
    out = {f"torch_{name.lower()}": settings[name].strip() for name in BUILD_SETTINGS if name in settings}
    for name, pattern in LIBRARIES.items():
        if found := re.search(pattern, config):
            out[name] = found.group(1)
    return out


@lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    """What cannot change within a process: the CPU and torch's version, build and CPU capability."""
    out = cpu()
    try:
        import torch
    except ImportError:
        return out
    return {**out, "torch_version": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), **torch_build(torch.__config__.show())}


def machine() -> dict[str, Any]:
    """This machine for a manifest: `cpu()`, torch's version, CPU capability, build (`torch_build`) and threads."""
    out = dict(_static())
    if "torch_version" in out:
        import torch

        out["torch_threads"] = torch.get_num_threads()
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, value in a, value in b) for every field the two machines differ in; the flags as those only in one."""
    out = []
    for name in dict.fromkeys([*a, *b]):
        x, y = a.get(name), b.get(name)
        if x == y:
            continue
        if name == "cpu_flags" and isinstance(x, list) and isinstance(y, list):
            x, y = [f for f in x if f not in y], [f for f in y if f not in x]
            out.append((name, "only " + (" ".join(x) or "-"), "only " + (" ".join(y) or "-")))
        else:
            out.append((name, "not recorded" if x is None else str(x), "not recorded" if y is None else str(y)))
    return out
