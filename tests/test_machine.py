"""The machine in every manifest: CPU model, floating-point instruction sets, torch's build and threads."""

import os

from oneshot_lab.records import writing
from oneshot_lab.util import machine


def test_a_started_record_carries_its_machine(tmp_path):
    writing.start(tmp_path / "r", {"seed": 0})
    found = writing.read_manifest(tmp_path / "r")["machine"]
    assert found == machine.machine() and found["logical_cores"] == os.cpu_count()
    assert isinstance(found["cpu_model"], str) and found["cpu_model"]
    assert set(found["cpu_flags"]) <= set(machine.FLOAT_FLAGS)
    import torch

    assert found["torch_version"] == torch.__version__ and found["torch_threads"] == torch.get_num_threads()
    assert found["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "torch_blas_info" in found and "torch_use_mkldnn" in found
    assert machine._static.cache_info().currsize == 1  # read once per process


def test_cpuinfo_and_torch_build_are_parsed():
    text = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f ht\n\nprocessor\t: 1\n"
    assert machine.cpu(text)["cpu_model"] == "Some CPU"
    assert machine.cpu(text)["cpu_flags"] == ["sse4_2", "avx", "avx2", "fma", "avx512f"]
    config = ("  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 2024\n"
              "  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80af)\n  - Build settings: BLAS_INFO=open, "
              "CXX_FLAGS= -O2 -DX, LAPACK_INFO=open, USE_MKL=OFF, USE_MKLDNN=ON, USE_OPENMP=ON, \n")
    assert machine.torch_build(config) == {
        "torch_blas_info": "open", "torch_lapack_info": "open", "torch_use_mkl": "OFF", "torch_use_mkldnn": "ON",
        "torch_use_openmp": "ON", "mkl_version": "2024.2", "onednn_version": "v3.12.0"}
    assert machine.differences({"cpu_flags": ["avx", "avx2", "avx512f"], "cpu_model": "p"},
                               {"cpu_flags": ["avx", "avx2"], "cpu_model": "p"}) == [
        ("cpu_flags", "only avx512f", "only -")]
