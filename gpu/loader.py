"""One loader for the .cu files in gpu/kernels: read the source, prefix `#line 1 "file"`, build a cupy.RawModule.

The #line directive makes NVRTC's errors and the profiler name the kernel file and its own line numbers.
Modules are cached per (file, options); CuPy also caches the compiled binary on disk (~/.cupy/kernel_cache).
"""

from __future__ import annotations

import functools
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
OPTIONS = ("-std=c++17",)


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
def get_module(file: str, options: tuple[str, ...] = ()):
    """The cupy.RawModule of gpu/kernels/`file`, compiled (lazily, on the first get_function) with OPTIONS + options."""
    import cupy

    return cupy.RawModule(code=kernel_source(file), options=OPTIONS + tuple(options))


def get_kernel(file: str, name: str, options: tuple[str, ...] = ()):
    """The extern "C" kernel `name` of gpu/kernels/`file`, as a cupy.RawKernel."""
    return get_module(file, tuple(options)).get_function(name)
