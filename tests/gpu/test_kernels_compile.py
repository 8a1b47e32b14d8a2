"""Every kernel in gpu/kernels compiles for the GPUs we target, without register spills; no GPU needed.

nvcc builds each .cu file for sm_80 (A100) and sm_90 (H100/H200) with `-Xptxas -v`; a compile error, a ptxas
warning or a spill (ptxas reports "N bytes spill stores, M bytes spill loads" per kernel) fails the test: a spill
turns the attention's register-held accumulators into local-memory traffic. A second test compiles the sources
through NVRTC exactly as gpu/loader.py hands them to CuPy (#line prefix, CuPy's include paths and options), which
catches what nvcc forgives (NVRTC has no <math.h>, for one); it needs libnvrtc, not a GPU.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from gpu.loader import KERNEL_DIR, OPTIONS, kernel_source

KERNEL_FILES = sorted(p.name for p in KERNEL_DIR.glob("*.cu"))
ARCHS = ("sm_80", "sm_90")
NVCC = shutil.which("nvcc")

SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
REGISTERS = re.compile(r"Used (\d+) registers")


def test_there_are_kernels():
    """Catches a moved kernels folder: the parametrized tests below would silently run zero cases."""
    assert {"sliding_window_attention.cu", "sliding_window_attention_tc.cu", "elementwise.cu"} <= set(KERNEL_FILES)


def ptxas_report(log: str) -> dict[str, dict]:
    """kernel name -> {"registers": int, "spill_stores": int, "spill_loads": int} from `-Xptxas -v` output."""
    report, current = {}, None
    for line in log.splitlines():
        if m := ENTRY.search(line):
            current = report.setdefault(m.group(1), {})
        elif current is not None and (m := SPILL.search(line)):
            current["spill_stores"], current["spill_loads"] = int(m.group(1)), int(m.group(2))
        elif current is not None and (m := REGISTERS.search(line)):
            current["registers"] = int(m.group(1))
    return report


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH (install the CUDA toolkit to compile the kernels)")
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", KERNEL_FILES)
def test_compiles_without_spills(file, arch, tmp_path):
    cmd = [NVCC, f"-arch={arch}", "-cubin", "-std=c++17", "-Xptxas", "-v",
           "-o", str(tmp_path / (file + ".cubin")), str(KERNEL_DIR / file)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"nvcc failed for {file} ({arch}):\n{log}"
    assert "warning" not in log.lower(), f"nvcc warned for {file} ({arch}):\n{log}"

    report = ptxas_report(log)
    assert report, f"no ptxas report for {file} ({arch}); was -Xptxas -v ignored?\n{log}"
    for kernel, info in report.items():
        assert "spill_stores" in info and "registers" in info, f"{kernel}: unparsed ptxas report\n{log}"
        assert info["spill_stores"] == 0 and info["spill_loads"] == 0, (
            f"{kernel} ({arch}) spills registers: {info}\n{log}")


def _nvrtc_or_skip():
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as e:  # cupy missing, or its libnvrtc (pip install nvidia-cuda-nvrtc) missing
        pytest.skip(f"NVRTC is not available here ({type(e).__name__}: {str(e).strip()})")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", KERNEL_FILES)
def test_compiles_with_nvrtc_as_loaded(file, arch):
    _nvrtc_or_skip()
    import cupy._core.core as cupy_core
    from cupy.cuda import compiler

    # CuPy's own steps of RawModule's compile, minus the device query (there may be no GPU here)
    assemble = getattr(cupy_core, "assemble_cupy_compiler_options", None)
    program_class = getattr(compiler, "_NVRTCProgram", None)
    if assemble is None or program_class is None:
        pytest.skip("this CuPy's internals differ (assemble_cupy_compiler_options, _NVRTCProgram)")
    options = assemble(OPTIONS) + (f"-arch={arch}",)
    program = program_class(kernel_source(file), file)
    try:
        program.compile(options)
    except compiler.CompileException as e:
        pytest.fail(f"NVRTC rejects {file} ({arch}):\n{e}")


LAYOUTS = {  # kernel file -> (C++ expression of the layout's size, the launcher's function)
    "sliding_window_attention.cu": ("SwaSmem<{dmax}>::bytes", "swa_f32_smem_bytes"),
    "sliding_window_attention_tc.cu": ("TcSmem<__half, {dmax}>::bytes", "swa_tc_smem_bytes"),
}


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH (install the CUDA toolkit to compile the kernels)")
@pytest.mark.parametrize("file", sorted(LAYOUTS))
def test_launcher_shared_memory_equals_kernel_layout(file, tmp_path):
    """gpu/backend.py repeats each kernel's shared-memory arithmetic; a mismatch would make the kernel trap (too
    little) or waste occupancy (too much). A host program built with nvcc prints the kernel's own numbers."""
    from gpu import backend

    expression, launcher = LAYOUTS[file]
    dmaxes = (32, 64, 128)
    prints = " ".join(f'printf("%d\\n", (int){expression.format(dmax=d)});' for d in dmaxes)
    program = tmp_path / "layout.cu"
    program.write_text(f'#include "{KERNEL_DIR / file}"\n#include <cstdio>\nint main() {{ {prints} return 0; }}\n')
    exe = tmp_path / "layout"
    done = subprocess.run([NVCC, "-std=c++17", "-arch=sm_80", "-o", str(exe), str(program)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert [int(x) for x in printed] == [getattr(backend, launcher)(d) for d in dmaxes]
