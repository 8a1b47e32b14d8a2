"""One loader for the .cu files in gpu/kernels: read the source, prefix `#line 1 "file"`, build a RawModule.

The #line directive makes the compiler's errors and the profiler name the kernel file and its own line numbers.
The kernels include common.cuh (their shared constants and helpers) with `#include "common.cuh"`; OPTIONS puts
gpu/kernels on the include path, since NVRTC compiles a string, not a file in that folder (nvcc, given the file,
finds the header beside it).

The module class is cupy.RawModule (NVRTC, on the GPU), or that of a runtime the caller names: the CPU runtime
(gpu/cpu_runtime) in the tests, which takes the same source and options. Modules are cached per (file, options,
runtime); CuPy also caches the compiled binary on disk (~/.cupy/kernel_cache).
"""

from __future__ import annotations

import functools
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
OPTIONS = ("-std=c++17", f"-I{KERNEL_DIR}")


def kernel_source(file: str) -> str:
    """The source of gpu/kernels/`file` as the compiler sees it: with the #line prefix."""
    path = KERNEL_DIR / file
    if path.suffix != ".cu" or path.parent != KERNEL_DIR:
        raise ValueError(f"{file!r} is not a .cu file directly under {KERNEL_DIR}")
    try:
        code = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(sorted(p.name for p in KERNEL_DIR.glob("*.cu")))
        raise ValueError(f"no kernel file {file!r} in {KERNEL_DIR}; there are: {known}") from None
    return f'#line 1 "gpu/kernels/{path.name}"\n{code}'


@functools.cache
def get_module(file: str, options: tuple[str, ...] = (), runtime=None):
    """The RawModule of gpu/kernels/`file`, compiled (lazily, on the first get_function) with OPTIONS + options.

    runtime None: cupy.RawModule; else `runtime.RawModule` (same arguments), e.g. gpu.cpu_runtime.CpuRuntime.
    """
    if runtime is None:
        import cupy

        raw_module = cupy.RawModule
    else:
        raw_module = runtime.RawModule
    return raw_module(code=kernel_source(file), options=OPTIONS + tuple(options))


def get_kernel(file: str, name: str, options: tuple[str, ...] = (), runtime=None):
    """The extern "C" kernel `name` of gpu/kernels/`file`, as a RawKernel of the runtime's kind (cupy's by default)."""
    return get_module(file, tuple(options), runtime).get_function(name)
