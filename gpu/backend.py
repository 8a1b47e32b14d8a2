"""The `cupy` backend: the model's arrays live on an NVIDIA GPU as CuPy arrays; the attention, LayerNorm and GELU
are the kernels in gpu/kernels, everything else (matrix products, the global rows) is CuPy's (cuBLAS).

It implements refimpl.backends.base.Backend and must equal the NumPy reference `refimpl.attention`:
float32 within the tolerances of tests/conftest.py. `CupyBackend(precision="float16" | "bfloat16")` runs
the attention's two products on tensor cores with inputs rounded to that type (float sums, float32 in and out);
that is an approximation of the reference, not equal to it.

The launch constants (block and tile sizes, thread counts, limits) are read from gpu/kernels/common.cuh
(gpu/kernel_constants.py); the shared-memory layouts are repeated below and checked against the kernels' own
numbers by tests/gpu/test_kernels_compile.py.

The launches go through a runtime: on a GPU, CuPy's (`CupyRuntime`: cupy arrays, cupy.RawModule, the device's
limits); in the tests, `CupyBackend(runtime=gpu.cpu_runtime.CpuRuntime())` runs the same launchers and the same
.cu files on the CPU. Nothing falls back to the CPU: without a GPU the backend raises with the reason.

Kernels and their launches:
    sliding_window_attention.cu     float32; 64 queries x 32-key tiles per block of 128 threads (plain / general)
    sliding_window_attention_tc.cu  float16 / bfloat16 WMMA; 64 queries x 64-key tiles per block of 128 threads
    elementwise.cu                  bias + GELU (grid-stride), residual + LayerNorm (one block per row)
Both attention kernels take the plain, the dilated (per head) and the autoregressive window.
"""

from __future__ import annotations

import functools

import numpy as np

from gpu.kernel_constants import kernel_constants
from gpu.loader import get_kernel
from refimpl.attention import global_attention, head_dilations
from refimpl.backends.base import Backend, check_attention_inputs

INSTALL_HINT = "pip install 'longformer-lab[gpu]'"

PRECISIONS = ("float32", "float16", "bfloat16")
_KERNEL_TYPE = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}

_K = kernel_constants()  # gpu/kernels/common.cuh
BQ = _K["BQ"]  # queries per block, both attention kernels
BK_F32 = _K["BK_F32"]  # keys per tile, sliding_window_attention.cu
BK_TC = _K["BK_TC"]  # keys per tile, sliding_window_attention_tc.cu
ATTENTION_THREADS = _K["ATTENTION_THREADS"]
LN_THREADS = _K["LN_THREADS"]
GELU_THREADS = _K["GELU_THREADS"]
GELU_MAX_BLOCKS = _K["GELU_MAX_BLOCKS"]
MAX_HEAD_SIZE = _K["MAX_HEAD_SIZE"]
DEFAULT_SMEM_LIMIT = _K["DEFAULT_SMEM_LIMIT"]  # above this a kernel must opt in (max_dynamic_shared_size_bytes)


@functools.cache
def unavailable_reason() -> str | None:
    """None when the cupy backend can run here; else why not, in words. Never raises."""
    try:
        import cupy
    except ImportError:
        return f"cupy is not installed ({INSTALL_HINT})"
    except Exception as e:  # a broken install: a wheel for another CUDA, a missing shared library
        return f"cupy is installed but does not import: {type(e).__name__}: {e}"
    try:
        runtime = cupy.cuda.runtime
        driver_version = runtime.driverGetVersion()  # 0: no driver (no libcuda) at all
        if driver_version == 0:
            return "no CUDA GPU visible (no NVIDIA driver found)"
        runtime_version = runtime.runtimeGetVersion()
        if driver_version < runtime_version:
            return (f"the NVIDIA driver is too old: it supports CUDA {_cuda_version(driver_version)} but this CuPy "
                    f"needs CUDA {_cuda_version(runtime_version)}; update the driver or install the CuPy wheel "
                    "for an older CUDA")
        try:
            count = runtime.getDeviceCount()
        except runtime.CUDARuntimeError as e:
            return f"no CUDA GPU visible ({e})"
        if count == 0:
            return "no CUDA GPU visible"
        if not cupy.is_available():
            return "cupy.is_available() is False although a CUDA device is visible"
        try:
            cupy.cuda.nvrtc.getVersion()
        except Exception as e:
            return (f"CUDA's runtime compiler NVRTC is missing ({type(e).__name__}: {e}); "
                    "pip install nvidia-cuda-nvrtc for this CUDA version")
    except Exception as e:
        return f"cupy cannot reach a GPU: {type(e).__name__}: {e}"
    return None


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _dmax(d: int) -> int:
    """The kernel instance for head size d: d rounded up to 32, 64 or 128 (the tiles are zero-padded)."""
    if not 1 <= d <= MAX_HEAD_SIZE:
        raise ValueError(f"the cupy attention kernels support head sizes 1..{MAX_HEAD_SIZE}, got D={d}")
    return 32 if d <= 32 else 64 if d <= 64 else 128


def swa_f32_smem_bytes(dmax: int) -> int:
    """Dynamic shared memory of sliding_window_attention.cu (SwaSmem<DMAX>), in bytes."""
    floats = (BQ * (dmax + 1)  # Qs: the block's 64 queries, row stride DMAX+1
              + BK_F32 * (dmax + 1)  # Ks: one tile of 32 keys
              + BK_F32 * dmax  # Vs: its values
              + BQ * (BK_F32 + 1)  # Ss: scores, then probabilities
              + 3 * BQ  # row_alpha, row_max, row_sum
              + BQ + 2 * BK_F32)  # ints: row_local, key_pos, key_ok
    return 4 * floats  # DMAX 32: 26_496, 64: 42_880, 128: 75_648


def swa_tc_smem_bytes(dmax: int) -> int:
    """Dynamic shared memory of sliding_window_attention_tc.cu (TcSmem<T, DMAX>), in bytes; T is 2 bytes."""
    return (2 * (BQ + 2 * BK_TC) * (dmax + 8)  # Qh, Kh, Vh: row stride DMAX+8 halves
            + 2 * BQ * (BK_TC + 8)  # Ph: probabilities as T
            + 4 * BQ * (BK_TC + 4)  # Sf: scores, float
            + 4 * BQ * (dmax + 4)  # Of: context accumulator, float
            + 4 * 2 * BQ  # row_max, row_sum
            + 4 * (BQ + 2 * BK_TC))  # ints: row_local, key_pos, key_ok. DMAX 32: 52_480, 64: 72_960, 128: 113_920


class CupyRuntime:
    """What CupyBackend launches through on a GPU: CuPy's arrays and RawModule, and the current device's limits."""

    def __init__(self):
        import cupy

        self.xp = cupy
        self.RawModule = cupy.RawModule
        device = cupy.cuda.Device()
        self.compute_capability = divmod(int(device.compute_capability), 10)  # "90" -> (9, 0)
        # the most dynamic shared memory one block may opt in to: 163 KB on sm_80, 227 KB on sm_90, 99 KB on sm_86
        self.smem_optin = cupy.cuda.runtime.deviceGetAttribute(
            cupy.cuda.runtime.cudaDevAttrMaxSharedMemoryPerBlockOptin, device.id)

    def asnumpy(self, a):
        return self.xp.asnumpy(a)


class CupyBackend(Backend):
    """The cupy backend (the interface and its shapes: refimpl.backends.base.Backend).

    runtime: None for the GPU (CupyRuntime); the tests pass gpu.cpu_runtime.CpuRuntime() to run the same launchers
    and kernels on the CPU.
    """

    name = "cupy"

    def __init__(self, precision: str = "float32", runtime=None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if runtime is None:
            reason = unavailable_reason()
            if reason is not None:
                raise ValueError(f"backend 'cupy' is not available: {reason}")
            runtime = CupyRuntime()
        major, minor = runtime.compute_capability
        if precision != "float32" and major < 8:
            raise ValueError(f"precision={precision!r} needs a GPU of compute capability 8.0 or newer "
                             f"(bfloat16 tensor cores); this one is {major}.{minor}")
        self.runtime = runtime
        self.xp = runtime.xp
        self.precision = precision
        self.smem_optin = runtime.smem_optin

    def _kernel(self, file, name):
        return get_kernel(file, name, runtime=self.runtime)

    # --- arrays --------------------------------------------------------------------------------------------------

    def asarray(self, a):
        return self.xp.asarray(a)

    def asnumpy(self, a):
        return self.runtime.asnumpy(a)

    # --- kernels -------------------------------------------------------------------------------------------------

    def _float32_input(self, a, name):
        cp = self.xp
        if not isinstance(a, cp.ndarray):
            raise TypeError(f"{name} must be a cupy array (move it with backend.asarray), got {type(a).__name__}")
        if a.dtype != cp.float32:
            raise TypeError(f"{name} must be float32, got {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous (the kernels index it as a dense array)")
        return a

    def _int32(self, a, name, shape):
        """Small index arrays (kind, global_index, n_global) as contiguous int32 on the device."""
        a = self.xp.ascontiguousarray(self.xp.asarray(a), dtype=self.xp.int32)
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        return a

    def sliding_window_attention(self, q, k, v, kind, global_index, n_global, w, output_attentions, dilation=1,
                                 autoregressive=False):
        cp = self.xp
        B, H, N, D, G, w = check_attention_inputs(q, k, v, kind, global_index, n_global, w, dilation,
                                                  autoregressive)
        dilations = head_dilations(dilation, H)  # H ints >= 1
        if max(dilations, default=1) * w + N + 2 * BQ >= 2**31:
            raise ValueError(f"dilation * W = {max(dilations, default=1) * w} is beyond the kernels' int32 positions")
        plain_window = set(dilations) == {1} and not autoregressive
        q, k, v = (self._float32_input(a, n) for a, n in ((q, "q"), (k, "k"), (v, "v")))
        kind = self._int32(kind, "kind", (B, N))
        global_index = self._int32(global_index, "global_index", (B, G))
        n_global = self._int32(n_global, "n_global", (B,))
        if G == 0:  # the kernel never reads it (n_global caps at G = 0), but a pointer must point somewhere
            global_index = cp.zeros(1, cp.int32)
        dilation = cp.asarray(np.array(dilations, np.int32))  # (H,)
        slots = w + 1 if autoregressive else 2 * w + 1  # S band columns
        dmax = _dmax(D)

        context = cp.empty((B, H, N, D), cp.float32)  # (B, H, N, D); every element is written
        if output_attentions:
            # (B, H, N, G+S); zero-filled: the kernel writes the visible columns only
            probs = cp.zeros((B, H, N, G + slots), cp.float32)
        else:
            probs = cp.empty(1, cp.float32)  # a dummy pointer; write_probs = 0
        if B * H * N == 0:
            return context, (probs if output_attentions else None)

        if self.precision == "float32":
            # the plain window has its own instance (fewer registers); `_general` takes any dilation, causal or not
            kernel = self._kernel("sliding_window_attention.cu",
                                  f"sliding_window_attention_f32_d{dmax}{'' if plain_window else '_general'}")
            smem = swa_f32_smem_bytes(dmax)
        else:
            kernel = self._kernel("sliding_window_attention_tc.cu",
                                  f"sliding_window_attention_{_KERNEL_TYPE[self.precision]}_d{dmax}")
            smem = swa_tc_smem_bytes(dmax)
        if smem > self.smem_optin:
            raise ValueError(f"the {self.precision} attention kernel for D={D} needs {smem} bytes of shared memory "
                             f"per block; this GPU allows {self.smem_optin}")
        if smem > DEFAULT_SMEM_LIMIT and kernel.max_dynamic_shared_size_bytes < smem:
            kernel.max_dynamic_shared_size_bytes = smem  # opt in above 48 KB (sm_80: up to 163 KB, sm_90: 227 KB)

        # one block per 64 queries of one (batch row, head): N = 4096, B*H = 12 -> 64 x 12 blocks of 128 threads
        grid = ((N + BQ - 1) // BQ, B * H)
        if B * H > 65535:
            raise ValueError(f"B * H = {B * H} exceeds the grid's y limit of 65535; split the batch")
        kernel(grid, (ATTENTION_THREADS,),
               (q, k, v, kind, global_index, n_global, dilation, context, probs,
                np.int32(H), np.int32(N), np.int32(D), np.int32(G), np.int32(w), np.int32(bool(autoregressive)),
                np.int32(bool(output_attentions))),
               shared_mem=smem)
        return context, (probs if output_attentions else None)

    def bias_gelu(self, x, bias=None, out=None):
        """gelu(x + bias) in one pass; bias (C,) over the last axis of x, or None; into out (x itself allowed) or
        a new array."""
        cp = self.xp
        x = cp.ascontiguousarray(self._float32_input_any(x, "x"))
        C = x.shape[-1] if x.ndim else 1
        if bias is not None:
            bias = cp.ascontiguousarray(self._float32_input_any(bias, "bias"))
            if bias.shape != (C,):
                raise ValueError(f"bias must have shape ({C},), got {bias.shape}")
        if out is None:
            out = cp.empty_like(x)
        elif not (isinstance(out, cp.ndarray) and out.dtype == np.float32 and out.shape == x.shape
                  and out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous float32 CuPy array of shape {x.shape}")
        n = x.size
        if n == 0:
            return out
        # one thread per element, grid-stride beyond 2^20 blocks of 256 (268M elements)
        blocks = min((n + GELU_THREADS - 1) // GELU_THREADS, GELU_MAX_BLOCKS)
        self._kernel("elementwise.cu", "bias_gelu_f32")(
            (blocks,), (GELU_THREADS,),
            (x, bias if bias is not None else x, out, np.int64(n), np.int32(C), np.int32(bias is not None)))
        return out

    def gelu(self, x, out=None):
        return self.bias_gelu(x, out=out)

    def global_attention(self, q_g, hidden, kv_global, kind, slot_used):
        """Pass 4: the reference's code on CuPy arrays (cuBLAS products)."""
        return global_attention(q_g, hidden, kv_global, kind, slot_used, self.xp)

    def residual_layer_norm(self, x, residual, weight, bias, eps, x_bias=None):
        """LayerNorm(x + x_bias + residual) over the last axis (x_bias and residual may be None), in one pass over
        each row; x_bias is added by CuPy before it (one more elementwise pass, the same order of sums)."""
        cp = self.xp
        x = cp.ascontiguousarray(self._float32_input_any(x, "x"))
        C = x.shape[-1]
        if x_bias is not None:
            x_bias = self._float32_input_any(x_bias, "x_bias")
            if x_bias.shape != (C,):
                raise ValueError(f"x_bias must have shape ({C},) (x's last axis), got {x_bias.shape}")
            x = x + x_bias
        if residual is not None:
            residual = cp.ascontiguousarray(self._float32_input_any(residual, "residual"))
            if residual.shape != x.shape:
                raise ValueError(f"residual must have the shape of x {x.shape}, got {residual.shape}")
        weight = cp.ascontiguousarray(self._float32_input_any(weight, "weight"))
        bias = cp.ascontiguousarray(self._float32_input_any(bias, "bias"))
        if weight.shape != (C,) or bias.shape != (C,):
            raise ValueError(f"weight and bias must have shape ({C},), got {weight.shape} and {bias.shape}")
        smem = 4 * C  # the row, as float32
        if smem > DEFAULT_SMEM_LIMIT:
            raise ValueError(f"residual_layer_norm_f32 holds a row in shared memory: C <= 12288, got C={C}")
        out = cp.empty_like(x)
        rows = x.size // C if C else 0
        if rows == 0:
            return out
        # one block of 256 threads per row (B*N rows), the row in C*4 bytes of dynamic shared memory
        self._kernel("elementwise.cu", "residual_layer_norm_f32")(
            (rows,), (LN_THREADS,),
            (x, residual if residual is not None else x, weight, bias, out,
             np.int32(C), np.float32(eps), np.int32(residual is not None)),
            shared_mem=smem)
        return out

    def layer_norm(self, x, weight, bias, eps):
        return self.residual_layer_norm(x, None, weight, bias, eps)

    def _float32_input_any(self, a, name):
        """Elementwise inputs: a cupy float32 array of any layout (the launcher makes it contiguous)."""
        cp = self.xp
        if not isinstance(a, cp.ndarray):
            raise TypeError(f"{name} must be a cupy array (move it with backend.asarray), got {type(a).__name__}")
        if a.dtype != cp.float32:
            raise TypeError(f"{name} must be float32, got {a.dtype}")
        return a
