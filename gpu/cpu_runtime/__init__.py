"""A CPU stand-in for cupy.RawModule / cupy.RawKernel: the CUDA C of gpu/kernels, unmodified, run on the host.

For the tests (tests/gpu/test_cpu_runtime.py), so that the GPU backend's kernels and launchers are verified on a
machine without a GPU: `CupyBackend(runtime=CpuRuntime())` builds its modules through the one loader
(gpu/loader.py), and launches them with its own grid, block, shared-memory arithmetic and typed scalars, exactly as
on a GPU; only the module class and the array module differ. Nothing chooses this runtime automatically: the
registry's `cupy` backend stays unavailable without a GPU.

How a module is built: the kernel source, as the loader hands it over (with its `#line 1 "gpu/kernels/x.cu"`), is
compiled by g++ with cuda_cpu.h in front (-include) and include/ first on the include path (its mma.h emulates
nvcuda::wmma); cuda_fp16.h / cuda_bf16.h come from the CUDA toolkit (CUDA_PATH, beside nvcc, or NVIDIA's pip
headers). A generated tail defines the extern __shared__ array (thread_local: one per running block) and, per
extern "C" kernel, an entry point and its C signature. The shared library is cached on disk by the hash of
everything that went into it.

How a kernel is launched: `kernel(grid, block, args, shared_mem=...)` as cupy's. Arguments are host NumPy arrays
(C-contiguous, the dtype of the kernel's pointer) and NumPy scalars of exactly the parameter's type (np.int32 for
int); anything else is a TypeError, where cupy would pass garbage. Each array is copied into pages with an
inaccessible page right after its last byte, so an out-of-bounds read fails the launch instead of reading a
neighbour. A failure (a fault, __trap(), a barrier not reached by every thread, a write past the launched shared
memory, a deadlock) raises KernelError naming the block, the threads and the source line.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RUNTIME_DIR = Path(__file__).resolve().parent
HEADER = RUNTIME_DIR / "cuda_cpu.h"
INCLUDE_DIR = RUNTIME_DIR / "include"

SMEM_CAPACITY = 227 * 1024  # cuda_cpu::SMEM_CAPACITY: the most dynamic shared memory a launch may ask for
DEFAULT_MAX_DYNAMIC_SMEM = 48 * 1024  # a function's limit until it opts in, as on a GPU
SCHEDULES = {"forward": 0, "reverse": 1, "shuffle": 2, "warp": 3}  # the order of threads between barriers

CXX_FLAGS = (
    "-x", "c++", "-std=c++17", "-fPIC", "-shared", "-pthread",
    "-fno-extern-tls-init",  # extern __shared__ arrays are extern thread_local: no TLS init wrapper (it is null)
    "-fno-strict-aliasing",  # kernels view one shared-memory buffer as float, int and half
    "-fno-gnu-unique",  # each module's runtime state stays its own, also for mutated copies of a kernel
    "-w",
)
# optimize=True: fast, and an uninitialised local is GCC's pattern (0xFE bytes: large finite floats, not 0).
# optimize=False: every local lives on the fiber's stack, which is poisoned (0xFF: NaN) before each block, so an
# accumulator that is never zeroed is NaN, as a register's garbage may be on a GPU.
OPTIMIZE_FLAGS = {True: ("-O2", "-ftrivial-auto-var-init=pattern"), False: ("-O0",)}
SANITIZER_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer")


class CompileError(RuntimeError):
    """g++ rejected a kernel source (the message holds its output)."""


class KernelError(RuntimeError):
    """A launch failed on the CPU: the message names the kernel, block, threads and source line."""


def compiler() -> str:
    """The host C++ compiler: $CXX, else g++ on PATH."""
    cxx = os.environ.get("CXX") or shutil.which("g++")
    if not cxx:
        raise CompileError("no host C++ compiler: install g++ or set CXX")
    return cxx


def unavailable_reason() -> str | None:
    """None when kernels can be compiled and run here; else why not."""
    if not (os.environ.get("CXX") or shutil.which("g++")):
        return "no host C++ compiler (g++) on PATH"
    return None


@functools.cache
def cuda_include_dir() -> Path | None:
    """Where cuda_fp16.h and cuda_bf16.h are: $CUDA_PATH/include, the toolkit of nvcc on PATH, or the include
    folder of NVIDIA's pip packages; None if none is installed. Only the toolkit is tried here: from pip, the
    headers come in nvidia-cuda-runtime and need CCCL's <nv/target> (nvidia-cuda-cccl) on the include path too."""
    candidates = []
    if os.environ.get("CUDA_PATH"):
        candidates.append(Path(os.environ["CUDA_PATH"]) / "include")
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent / "include")
        with open(nvcc, "rb") as f:  # a wrapper script (exec /usr/local/cuda-13.0/bin/nvcc "$@")
            m = re.search(rb"exec\s+(\S+)/bin/nvcc", f.read(4096))
        if m:
            candidates.append(Path(m.group(1).decode()) / "include")
    try:
        import nvidia

        candidates += [Path(p) / sub / "include" for p in nvidia.__path__ for sub in ("cu13", "cuda_runtime")]
    except ImportError:
        pass
    return next((c for c in candidates if (c / "cuda_fp16.h").is_file()), None)


def cache_dir() -> Path:
    """Compiled modules: $LONGFORMER_CUDA_CPU_CACHE, else ~/.cache/longformer-lab/cuda-cpu."""
    default = Path.home() / ".cache" / "longformer-lab" / "cuda-cpu"
    return Path(os.environ.get("LONGFORMER_CUDA_CPU_CACHE", default))


class HostArrays:
    """NumPy as a CupyBackend's array module, with cupy's `asnumpy`. `empty` and `empty_like` fill the new array
    with NaN (floats) or a poison integer, as uninitialised device memory might hold: an output element that a kernel
    never writes shows up in the comparison with the reference."""

    POISON_INT = -0x2A2A2A2B

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def _poison(a):
        a.fill(np.nan if a.dtype.kind in "fc" else HostArrays.POISON_INT if a.dtype.kind in "iu" else 0)
        return a

    def empty(self, shape, dtype=float, order="C"):
        return self._poison(np.empty(shape, dtype, order))

    def empty_like(self, a, dtype=None, order="K", shape=None):
        return self._poison(np.empty_like(a, dtype=dtype, order=order, shape=shape))

    @staticmethod
    def asnumpy(a):
        return np.array(a, copy=True)


class CpuRuntime:
    """What CupyBackend launches through when a test chooses the CPU: `CupyBackend(runtime=CpuRuntime(...))`.

    schedule  the order of a block's threads between barriers: "forward", "reverse", "shuffle" (seeded) or "warp"
              (one warp at a time, the last first)
    workers   OS threads that run blocks;  sanitize  build with ASan + UBSan (the process must preload libasan)
    optimize  g++ -O2 (False: -O0, uninitialised locals read as NaN; see OPTIMIZE_FLAGS)
    """

    compute_capability = (9, 0)  # what the backend asks of the device: sm_90 has bf16 tensor cores
    smem_optin = SMEM_CAPACITY

    def __init__(self, schedule: str = "forward", seed: int = 0, workers: int = 2, sanitize: bool = False,
                 optimize: bool = True):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.schedule, self.seed, self.workers = schedule, seed, workers
        self.sanitize, self.optimize = sanitize, optimize
        self.xp = HostArrays()

    def RawModule(self, code: str, options: tuple[str, ...] = ()):  # noqa: N802 (cupy's name)
        return RawModule(code=code, options=options, runtime=self)

    def asnumpy(self, a):
        return self.xp.asnumpy(a)

    def __repr__(self):
        return f"CpuRuntime(schedule={self.schedule!r}, seed={self.seed}, workers={self.workers})"


_EXTERN_SHARED = re.compile(  # extern __shared__ [__align__(n)] TYPE NAME[]
    r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w\s]*?)\s+(\w+)\s*\[\s*\]")
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(')


def entry_points(code: str) -> str:
    """The generated tail of a module: the extern __shared__ array's storage and each kernel's entry point."""
    shared = {name: type_ for type_, name in _EXTERN_SHARED.findall(code)}
    if len(shared) > 1:
        raise CompileError(f"the CPU runtime supports one extern __shared__ name per file, found {sorted(shared)}")
    name, type_ = next(iter(shared.items()), ("cuda_cpu_no_dynamic_smem", "unsigned char"))
    lines = ['#line 1 "<cuda_cpu entry points>"',
             f"alignas(256) thread_local {type_} {name}[(cuda_cpu::SMEM_CAPACITY + cuda_cpu::SMEM_GUARD) / "
             f"sizeof({type_})];",
             f"unsigned char* cuda_cpu::dynamic_smem_base() {{ return reinterpret_cast<unsigned char*>({name}); }}"]
    for kernel in dict.fromkeys(_KERNEL.findall(code)):
        lines.append(f'extern "C" void cuda_cpu_run_{kernel}(void** p) {{ cuda_cpu::call({kernel}, p); }}')
        lines.append(f'extern "C" const char* cuda_cpu_signature_{kernel}() {{ '
                     f'return cuda_cpu::signature({kernel}); }}')
    return "\n".join(lines) + "\n"


class RawModule:
    """cupy.RawModule's interface: RawModule(code=..., options=...).get_function(name). Compiled on first use."""

    def __init__(self, code: str, options: tuple[str, ...] = (), runtime: CpuRuntime | None = None):
        self.code, self.runtime = code, runtime or CpuRuntime()
        self.include_dirs = []
        for option in options:
            if option.startswith("-I") and len(option) > 2:
                self.include_dirs.append(option[2:])
            elif option != "-std=c++17":  # the one standard the kernels are written in, as for NVRTC
                raise ValueError(f"the CPU runtime does not know the compiler option {option!r}")
        self._library = None

    @property
    def library(self) -> ctypes.CDLL:
        if self._library is None:
            self._library = _load(self.code, tuple(self.include_dirs), self.runtime.sanitize, self.runtime.optimize)
        return self._library

    def get_function(self, name: str) -> RawKernel:
        try:
            run = getattr(self.library, f"cuda_cpu_run_{name}")
        except AttributeError:
            raise AttributeError(f"the module has no extern \"C\" __global__ kernel {name!r}") from None
        signature = getattr(self.library, f"cuda_cpu_signature_{name}")
        signature.restype = ctypes.c_char_p
        return RawKernel(name, self, ctypes.cast(run, ctypes.c_void_p), signature().decode().split(","))


@functools.cache
def _load(code: str, include_dirs: tuple[str, ...], sanitize: bool, optimize: bool) -> ctypes.CDLL:
    cxx = compiler()
    cuda_include = cuda_include_dir()
    command = [cxx, *CXX_FLAGS, *OPTIMIZE_FLAGS[optimize], *(SANITIZER_FLAGS if sanitize else ()),
               "-include", str(HEADER),
               "-I", str(INCLUDE_DIR), *(f"-I{d}" for d in include_dirs),
               *(["-I", str(cuda_include)] if cuda_include else [])]
    unit = code + "\n" + entry_points(code)
    headers = "".join(p.read_text() for p in sorted(RUNTIME_DIR.rglob("*.h")))
    included = "".join(p.read_text() for d in include_dirs for p in sorted(Path(d).glob("*.cuh")))
    # the key: what the compiler reads (the unit, the runtime's headers, the .cuh files of the include folders) and
    # the flags, but not the include folders' paths, so that a copy of the headers in a new folder hits the cache
    flags = [c for c in command if not any(c.endswith(d) for d in include_dirs)]
    key = hashlib.sha256("\0".join([unit, headers, included, *flags]).encode()).hexdigest()[:24]
    library = cache_dir() / f"{key}{'-asan' if sanitize else ''}.so"
    if not library.exists():
        library.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=library.parent) as tmp:
            source, output = Path(tmp) / "kernel.cu", Path(tmp) / "kernel.so"
            source.write_text(unit, encoding="utf-8")
            done = subprocess.run([*command, "-o", str(output), str(source)], capture_output=True, text=True,
                                  timeout=600)
            if done.returncode != 0:
                hint = "" if cuda_include else " (no CUDA headers found: cuda_fp16.h needs the CUDA toolkit)"
                raise CompileError(f"g++ failed{hint}:\n{done.stderr[-6000:]}")
            os.replace(output, library)
    return ctypes.CDLL(str(library), mode=os.RTLD_LOCAL | os.RTLD_NOW)


_DTYPE_OF_CODE = {"f4": np.float32, "f8": np.float64, "i4": np.int32, "u4": np.uint32, "i8": np.int64,
                  "u8": np.uint64, "u1": np.uint8, "f2": np.float16}


class RawKernel:
    """cupy.RawKernel's interface: kernel(grid, block, args, shared_mem=0) and max_dynamic_shared_size_bytes."""

    def __init__(self, name, module, run, signature):
        self.name, self.module, self._run, self.signature = name, module, run, signature
        self.max_dynamic_shared_size_bytes = DEFAULT_MAX_DYNAMIC_SMEM
        lib = module.library
        self._launch = lib.cuda_cpu_launch
        self._launch.restype = ctypes.c_int

    def __call__(self, grid, block, args, shared_mem: int = 0):
        runtime = self.module.runtime
        grid, block = _dim3(grid, "grid"), _dim3(block, "block")
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name} takes {len(self.signature)} arguments ({','.join(self.signature)}), "
                            f"got {len(args)}")
        if shared_mem > self.max_dynamic_shared_size_bytes:
            raise KernelError(f"{self.name}: shared_mem={shared_mem} exceeds the function's "
                              f"max_dynamic_shared_size_bytes={self.max_dynamic_shared_size_bytes} "
                              "(opt in above 48 KB)")
        values, params, nbytes, writable = [], [], [], []
        for i, (a, code) in enumerate(zip(args, self.signature)):
            if code.startswith("*"):
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{self.name}: argument {i} ({code}) must be an array, got {type(a).__name__}")
                element = code[1:]
                if (a.dtype.itemsize != 2) if element == "f2" else (a.dtype != _DTYPE_OF_CODE.get(element)):
                    raise TypeError(f"{self.name}: argument {i} must be a {code[1:]} array, got {a.dtype}")
                if not a.flags.c_contiguous:
                    raise ValueError(f"{self.name}: argument {i} is not C-contiguous")
                value = ctypes.c_void_p(a.ctypes.data)
                nbytes.append(a.nbytes)
                writable.append(int(a.flags.writeable))
            else:
                expected = _DTYPE_OF_CODE.get(code)
                if not isinstance(a, np.generic) or a.dtype != expected:
                    raise TypeError(f"{self.name}: argument {i} must be a {np.dtype(expected).name} scalar "
                                    f"(pass np.{np.dtype(expected).name}(...)), got {type(a).__name__} {a!r}")
                value = np.array(a)  # its bytes, kept alive for the call
                nbytes.append(-1)
                writable.append(0)
            values.append(value)
            params.append(ctypes.cast(ctypes.pointer(value), ctypes.c_void_p) if isinstance(value, ctypes.c_void_p)
                          else ctypes.c_void_p(value.ctypes.data))
        n = len(args)
        error = ctypes.create_string_buffer(4096)
        rc = self._launch(self._run, (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block),
                          ctypes.c_ulonglong(shared_mem), (ctypes.c_void_p * max(n, 1))(*params), ctypes.c_int(n),
                          (ctypes.c_longlong * max(n, 1))(*nbytes), (ctypes.c_int * max(n, 1))(*writable),
                          ctypes.c_int(SCHEDULES[runtime.schedule]), ctypes.c_ulonglong(runtime.seed),
                          ctypes.c_int(runtime.workers), error, ctypes.c_int(len(error)))
        if rc != 0:
            raise KernelError(f"{self.name}: {error.value.decode(errors='replace')}")


def _dim3(d, what) -> tuple[int, int, int]:
    d = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    if not 1 <= len(d) <= 3 or not all(isinstance(x, (int, np.integer)) and x >= 1 for x in d):
        raise ValueError(f"{what} must be 1 to 3 positive integers, got {d!r}")
    return tuple(int(x) for x in d) + (1,) * (3 - len(d))
