"""The CUDA kernels of gpu/kernels, unmodified, run on the CPU through CupyBackend's own launchers.

gpu/cpu_runtime compiles each .cu file with g++ (cuda_cpu.h in front: every CUDA thread a fiber, a block's fibers
on one OS thread, real block and warp barriers, thread_local shared memory, emulated WMMA) and stands in for
cupy.RawModule, so `CupyBackend(runtime=CpuRuntime(...))` launches them with the grid, block, shared memory and
typed scalars of gpu/backend.py, as on a GPU. Their outputs are compared with the NumPy reference:
  - float32 within 2e-6 (PROBS_ATOL) of refimpl.attention, context and probabilities; half precision within HALF_TOL;
  - every case under four thread schedules between barriers (in order, reversed, shuffled, one warp at a time),
    with dynamic shared memory poisoned (0xFF: NaN) before each block, outputs starting as NaN, writes past the
    launched shared memory and reads past an argument's end reported as errors: a race, an uninitialised read or
    an out-of-bounds access changes the result or fails the launch;
  - a mutation check: bugs seeded into copies of the kernels must each be caught.
Without g++ these tests are skipped with the reason; the half-precision ones also need the CUDA toolkit's
cuda_fp16.h (found beside nvcc, or in NVIDIA's pip packages).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import (BACKEND_ATOL, BACKEND_PROBS_ATOL, BACKEND_PROBS_RTOL, HALF_TOL, PROBS_ATOL, assert_close,
                      random_inputs)
from kernel_cases import CASES, make_case, random_case, reference

from gpu import cpu_runtime
from gpu.backend import CupyBackend
from gpu.cpu_runtime import CpuRuntime, KernelError
from gpu.kernel_constants import COMMON_HEADER, kernel_constants, parse_integer_defines
from gpu.loader import KERNEL_DIR, OPTIONS
from refimpl.attention import GLOBAL, LOCAL, MASKED, PADDING, global_slots

pytestmark = pytest.mark.skipif(cpu_runtime.unavailable_reason() is not None,
                                reason=f"CPU runtime: {cpu_runtime.unavailable_reason()}")
needs_cuda_headers = pytest.mark.skipif(
    cpu_runtime.cuda_include_dir() is None, reason="cuda_fp16.h not found (install the CUDA toolkit or nvidia-cuda-runtime)")

SCHEDULES = tuple(cpu_runtime.SCHEDULES)  # forward, reverse, shuffle, warp
KERNEL_ATOL = PROBS_ATOL  # float32 kernels against the reference: 2e-6, context and probabilities alike


def backend(precision="float32", schedule="forward", seed=0):
    return CupyBackend(precision, runtime=CpuRuntime(schedule=schedule, seed=seed))


def run_attention(be, inputs, precision="float32", what="", **window):
    """Both sweeps (with probabilities) and the context-only call; returns the largest differences seen.
    window: dilation (one or per head), autoregressive."""
    q, k, v, kind, global_index, n_global, w = inputs
    context, probs = be.sliding_window_attention(q, k, v, kind, global_index, n_global, w, True, **window)
    ref_context, ref_probs = reference(q, k, v, kind, global_index, n_global, w, **window)
    tol = dict(atol=KERNEL_ATOL, rtol=0) if precision == "float32" else HALF_TOL[precision]
    assert_close(context, ref_context, **tol, what=f"{what}: context")
    assert_close(probs, ref_probs, **tol, what=f"{what}: probs")
    context_only, none = be.sliding_window_attention(q, k, v, kind, global_index, n_global, w, False, **window)
    assert none is None
    np.testing.assert_array_equal(context_only, context, err_msg=f"{what}: context without probabilities")
    return float(np.abs(context - ref_context).max(initial=0)), float(np.abs(probs - ref_probs).max(initial=0))


# ---------------------------------------------------------------------------------------------------------------
# One source for the kernels' constants
# ---------------------------------------------------------------------------------------------------------------

def test_launch_constants_come_from_common_header():
    """Catches a constant repeated by hand in Python, and token kinds or a masked score that differ from the
    reference's."""
    from gpu import backend as gb

    k = kernel_constants()
    assert (gb.BQ, gb.BK_F32, gb.BK_TC, gb.ATTENTION_THREADS, gb.LN_THREADS, gb.GELU_THREADS, gb.MAX_HEAD_SIZE) == (
        k["BQ"], k["BK_F32"], k["BK_TC"], k["ATTENTION_THREADS"], k["LN_THREADS"], k["GELU_THREADS"],
        k["MAX_HEAD_SIZE"])
    assert (k["PADDING"], k["LOCAL"], k["GLOBAL"]) == (PADDING, LOCAL, GLOBAL)
    masked_bits = f"__uint_as_float(0x{int(np.float32(MASKED).view(np.uint32)):08x}u)"
    assert f"#define MASKED {masked_bits}" in COMMON_HEADER.read_text(), "MASKED must be finfo(float32).min"
    for file in ("sliding_window_attention.cu", "sliding_window_attention_tc.cu", "elementwise.cu"):
        source = (KERNEL_DIR / file).read_text()
        assert '#include "common.cuh"' in source
        assert not set(parse_integer_defines(source)) & set(k), f"{file} redefines a constant of common.cuh"


def test_constant_parser_reads_integer_defines_only():
    text = "#define A 1  // one\n#define B (A + 1)\n#define f(x) x\n  #  define C -3\n#define lower 4\n"
    assert parse_integer_defines(text) == {"A": 1, "C": -3}
    with pytest.raises(ValueError, match="twice"):
        parse_integer_defines("#define A 1\n#define A 2\n")


def test_loader_puts_the_kernel_folder_on_the_include_path():
    assert f"-I{KERNEL_DIR}" in OPTIONS


# ---------------------------------------------------------------------------------------------------------------
# The attention kernels against the reference
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", CASES)
def test_float32_kernel_equals_reference(name, schedule):
    """sliding_window_attention.cu: band bounds, tile starts, masks, online softmax, probability columns, the
    context-only sweep; under each schedule (a race or a missing barrier changes the result)."""
    run_attention(backend("float32", schedule), make_case(name, seed=1), what=f"{name} ({schedule})")


@needs_cuda_headers
@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", ["one token", "N below one block, W > N", "globals > one key tile",
                                  "D = 128, W = 256", "D = 100 (padded to 128)", "all padding but one row"])
def test_tensor_core_kernel_is_close_to_reference(name, schedule, precision):
    """sliding_window_attention_tc.cu: its 64-key tiles, WMMA fragments (alignment, strides, warp-wide calls) and
    the rounding it does stay within HALF_TOL of the float32 reference."""
    run_attention(backend(precision, schedule), make_case(name, seed=2), precision, what=f"{name} ({schedule})")


WINDOWS = {  # name -> (case, window options): the paper's dilated and autoregressive windows (issue #15)
    "dilation 2, one tile of band": ("N = block + 1", dict(dilation=2)),
    "dilation per head, globals > one key tile": ("globals > one key tile", dict(dilation=[1, 3])),
    "dilated window wider than N": ("N below one block, W > N", dict(dilation=[2, 5])),
    "autoregressive": ("no globals, several tiles", dict(autoregressive=True)),
    "autoregressive, dilated, D = 128": ("D = 128, W = 256", dict(autoregressive=True, dilation=[1, 2])),
}


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", WINDOWS)
def test_dilated_and_autoregressive_windows(name, precision):
    """Band slot t of query i is key i + d (t - W), d per head; autoregressive: keys j <= i, W+1 band columns.
    Catches a wrong dilated span or slot column, or a causal kernel that reads ahead."""
    if precision != "float32" and cpu_runtime.cuda_include_dir() is None:
        pytest.skip("cuda_fp16.h not found")
    case, window = WINDOWS[name]
    inputs = list(make_case(case, seed=5))
    if window.get("autoregressive"):  # no global tokens: make them local
        inputs[3] = np.where(inputs[3] == GLOBAL, LOCAL, inputs[3]).astype(np.int8)
        inputs[4], inputs[5] = global_slots(inputs[3])
    schedule = SCHEDULES[len(name) % len(SCHEDULES)]
    run_attention(backend(precision, schedule), inputs, precision, what=f"{name} ({precision})", **window)


@pytest.mark.parametrize("seed", range(12))
def test_random_cases(seed):
    """Random shapes, windows, padding and global tokens, for each kernel in turn and a schedule each."""
    description, inputs, window = random_case(seed)
    precisions = ["float32"] + (["float16", "bfloat16"] if cpu_runtime.cuda_include_dir() else [])
    precision = precisions[seed % len(precisions)]
    schedule = SCHEDULES[seed % len(SCHEDULES)]
    run_attention(backend(precision, schedule, seed), inputs, precision, what=f"{description} {precision} {schedule}",
                  **window)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12, 60))
def test_more_random_cases(seed):
    test_random_cases(seed)


# ---------------------------------------------------------------------------------------------------------------
# The elementwise kernels
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["forward", "shuffle"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 37), (2, 5, 384), (4, 768), (2, 3072)])
def test_elementwise_kernels_equal_numpy(shape, schedule):
    """bias + GELU (grid-stride) and residual + LayerNorm (warp shuffles, block sums), widths not a multiple of a
    warp included."""
    from refimpl.ops import gelu, layer_norm

    be = backend("float32", schedule)
    rng = np.random.default_rng(3)
    x, residual = (rng.standard_normal(shape, dtype=np.float32) * 3 for _ in range(2))
    C = shape[-1]
    weight, bias = rng.standard_normal(C, dtype=np.float32), rng.standard_normal(C, dtype=np.float32)
    tol = dict(atol=BACKEND_ATOL, rtol=0)
    assert_close(be.gelu(x), gelu(x), **tol, what="gelu")
    assert_close(be.bias_gelu(x, bias), gelu(x + bias), **tol, what="bias_gelu")
    in_place = x.copy()
    assert be.bias_gelu(in_place, bias, out=in_place) is in_place  # the kernel's x and out one array
    assert_close(in_place, gelu(x + bias), **tol, what="bias_gelu in place")
    assert_close(be.layer_norm(x, weight, bias, 1e-5), layer_norm(x, weight, bias, 1e-5), **tol, what="layer_norm")
    assert_close(be.residual_layer_norm(x, residual, weight, bias, 1e-12),
                 layer_norm(x + residual, weight, bias, 1e-12), **tol, what="residual_layer_norm")


# ---------------------------------------------------------------------------------------------------------------
# Conformance: CupyBackend on the CPU, method by method, against NumpyBackend on the contract's edge cases
# ---------------------------------------------------------------------------------------------------------------

EDGE_CASES = {  # (B, H, N, D, W, kinds per row)
    "N = 1": (1, 2, 1, 8, 3, [[LOCAL]]),
    "window wider than N": (2, 2, 7, 8, 20, [[LOCAL] * 7, [LOCAL] * 5 + [PADDING] * 2]),
    "all global": (1, 2, 6, 8, 2, [[GLOBAL] * 6]),
    "all padding row": (2, 3, 9, 4, 2, [[PADDING] * 9, [GLOBAL] + [LOCAL] * 8]),
}


def edge_inputs(name):
    B, H, N, D, W, kinds = EDGE_CASES[name]
    rng = np.random.default_rng(len(name))
    q, k, v = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))
    kind = np.array(kinds, np.int8)
    global_index, n_global = global_slots(kind)
    return q, k, v, kind, global_index, n_global, W


@pytest.mark.parametrize("name", EDGE_CASES)
def test_conformance_with_numpy_backend(name):
    """Every method of the interface, as the model calls it, equals NumpyBackend within the backend tolerances."""
    from refimpl.backends import get_backend

    be, ref = backend(), get_backend("numpy")
    inputs = edge_inputs(name)
    for output_attentions in (False, True):
        context, probs = be.sliding_window_attention(*inputs, output_attentions)
        ref_context, ref_probs = ref.sliding_window_attention(*inputs, output_attentions)
        assert_close(be.asnumpy(context), ref_context, atol=BACKEND_ATOL, rtol=0, what=f"{name}: context")
        if output_attentions:
            assert_close(be.asnumpy(probs), ref_probs, atol=BACKEND_PROBS_ATOL, rtol=BACKEND_PROBS_RTOL,
                         what=f"{name}: probs")
        else:
            assert probs is None

    q, k, v, kind, global_index, n_global, w = inputs
    B, H, N, D = q.shape
    C, G = H * D, global_index.shape[1]
    rng = np.random.default_rng(7)
    q_g = rng.standard_normal((B, H, G, D), dtype=np.float32)
    hidden = rng.standard_normal((B, N, C), dtype=np.float32)
    kv_global = (rng.standard_normal((2 * C, C), dtype=np.float32) * 0.1, rng.standard_normal(2 * C, dtype=np.float32))
    slot_used = np.arange(G)[None, :] < n_global[:, None]
    got = be.global_attention(q_g, hidden, kv_global, kind, slot_used)
    want = ref.global_attention(q_g, hidden, kv_global, kind, slot_used)
    assert_close(got[0], want[0], atol=BACKEND_ATOL, rtol=0, what=f"{name}: global context")
    assert_close(got[1], want[1], atol=BACKEND_PROBS_ATOL, rtol=BACKEND_PROBS_RTOL, what=f"{name}: global probs")

    x, residual = hidden * 3, rng.standard_normal(hidden.shape, dtype=np.float32)
    weight, bias = rng.standard_normal(C, dtype=np.float32), rng.standard_normal(C, dtype=np.float32)
    tol = dict(atol=BACKEND_ATOL, rtol=0)
    assert_close(be.gelu(x), ref.gelu(x), **tol, what=f"{name}: gelu")
    assert_close(be.layer_norm(x, weight, bias, 1e-5), ref.layer_norm(x, weight, bias, 1e-5), **tol,
                 what=f"{name}: layer_norm")
    assert_close(be.residual_layer_norm(x, residual, weight, bias, 1e-5),
                 ref.residual_layer_norm(x, residual, weight, bias, 1e-5), **tol, what=f"{name}: residual_layer_norm")
    assert_close(be.residual_layer_norm(x, residual, weight, bias, 1e-5, x_bias=bias[::-1].copy()),
                 ref.residual_layer_norm(x, residual, weight, bias, 1e-5, x_bias=bias[::-1].copy()), **tol,
                 what=f"{name}: residual_layer_norm with x_bias")


def test_registry_still_reports_cupy_unavailable_without_a_gpu():
    """The CPU runtime is chosen by tests only: the registry's cupy backend never falls back to it."""
    from refimpl.backends import available_backends

    from gpu.backend import unavailable_reason

    if unavailable_reason() is None:
        pytest.skip("a GPU is usable here")
    assert isinstance(available_backends()["cupy"], str)
    with pytest.raises(ValueError, match="not available"):
        CupyBackend()


# ---------------------------------------------------------------------------------------------------------------
# The launchers, as the kernels' C signatures see them
# ---------------------------------------------------------------------------------------------------------------

def test_launcher_checks_its_inputs():
    be = backend()
    q, k, v, kind, global_index, n_global, w = make_case("N = block")
    with pytest.raises(TypeError, match="float32"):
        be.sliding_window_attention(q.astype(np.float64), k, v, kind, global_index, n_global, w, False)
    with pytest.raises(ValueError, match="C-contiguous"):
        be.sliding_window_attention(np.asfortranarray(q), k, v, kind, global_index, n_global, w, False)
    with pytest.raises(ValueError, match="head sizes"):
        big = np.zeros(q.shape[:3] + (130,), np.float32)
        be.sliding_window_attention(big, big, big, kind, global_index, n_global, w, False)
    with pytest.raises(ValueError, match="dilation must be"):
        be.sliding_window_attention(q, k, v, kind, global_index, n_global, w, False, dilation=[1, 2, 3])
    with pytest.raises(ValueError, match="autoregressive attention has no global tokens"):
        be.sliding_window_attention(q, k, v, kind, global_index, n_global, w, False, autoregressive=True)


def test_kernel_refuses_untyped_or_mistyped_arguments():
    """The stand-in checks each argument against the kernel's C signature: cupy would pass garbage."""
    from gpu.loader import get_kernel

    kernel = get_kernel("elementwise.cu", "bias_gelu_f32", runtime=CpuRuntime())
    x = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="int64 scalar"):
        kernel((1,), (256,), (x, x, x, 4, np.int32(4), np.int32(0)))  # a Python int where long long n is expected
    with pytest.raises(TypeError, match="f4 array"):
        kernel((1,), (256,), (x, x, x.astype(np.float64), np.int64(4), np.int32(4), np.int32(0)))
    with pytest.raises(TypeError, match="takes 6 arguments"):
        kernel((1,), (256,), (x, x, x))


def test_too_little_shared_memory_traps():
    """A launch with less dynamic shared memory than the kernel's layout: its own __trap() comes back as an error
    naming the line; and one above 48 KB without the function's opt-in is refused, as on a GPU."""
    from gpu.backend import swa_f32_smem_bytes
    from gpu.loader import get_kernel

    q, k, v, kind, global_index, n_global, w = make_case("N = block")
    B, H, N, D = q.shape
    kernel = get_kernel("sliding_window_attention.cu", "sliding_window_attention_f32_d32", runtime=CpuRuntime())
    context, probs = np.empty_like(q), np.zeros(1, np.float32)
    i32 = [a.astype(np.int32) for a in (kind, global_index, n_global)]
    dilation = np.ones(H, np.int32)
    args = (q, k, v, *i32, dilation, context, probs, *map(np.int32, (H, N, D, global_index.shape[1], w, 0, 0)))
    with pytest.raises(KernelError, match=r"__trap\(\) at gpu/kernels/sliding_window_attention.cu:\d+"):
        kernel((1, B * H), (128,), args, shared_mem=swa_f32_smem_bytes(32) - 4)
    with pytest.raises(KernelError, match="max_dynamic_shared_size_bytes"):
        kernel((1, B * H), (128,), args, shared_mem=64 * 1024)


# ---------------------------------------------------------------------------------------------------------------
# The runtime catches what it promises to catch (small kernels of its own)
# ---------------------------------------------------------------------------------------------------------------

PROBES = r'''
extern "C" __global__ void divergent_barrier(float* out) {
    if (threadIdx.x < 40) __syncthreads();
    out[threadIdx.x] = 1.0f;
    __syncthreads();
}
extern "C" __global__ void read_past_end(const float* in, float* out, int n) {
    out[threadIdx.x] = in[threadIdx.x + n];
}
extern "C" __global__ void write_past_smem(float* out) {
    extern __shared__ float buf[];
    buf[threadIdx.x + 64] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = buf[threadIdx.x];
}
extern "C" __global__ void shuffles(const float* in, float* out) {
    const float v = in[threadIdx.x];
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, 3) + 100.0f * __shfl_down_sync(0xffffffffu, v, 1);
}
extern "C" __global__ void lanes_disagree(float* out) {
    if (threadIdx.x % 32 < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
extern "C" __global__ void block_or(const int* in, int* out) {
    out[threadIdx.x] = __syncthreads_or(in[threadIdx.x]) + 2 * __syncthreads_count(in[threadIdx.x]);
}
'''


@pytest.fixture(scope="module")
def probes():
    return cpu_runtime.RawModule(code=PROBES, options=("-std=c++17",), runtime=CpuRuntime(workers=1))


def test_runtime_reports_divergent_barrier(probes):
    out = np.zeros(64, np.float32)
    with pytest.raises(KernelError, match=r"block \(0,0,0\): __syncthreads at <?\S*:3 is not reached by every thread.*"
                                          r"threads 0\.\.39 waiting at __syncthreads at \S+:3"):
        probes.get_function("divergent_barrier")((1,), (64,), (out,))


def test_runtime_reports_read_past_an_argument(probes):
    x, out = np.ones(64, np.float32), np.zeros(64, np.float32)
    probes.get_function("read_past_end")((1,), (64,), (x, out, np.int32(0)))
    with pytest.raises(KernelError, match="out-of-bounds access to argument 0 .* past its end"):
        probes.get_function("read_past_end")((1,), (64,), (x, out, np.int32(1024)))


def test_runtime_reports_write_past_launched_shared_memory(probes):
    out = np.zeros(64, np.float32)
    probes.get_function("write_past_smem")((1,), (64,), (out,), shared_mem=128 * 4)
    with pytest.raises(KernelError, match="past the 256 bytes it was launched with"):
        probes.get_function("write_past_smem")((1,), (64,), (out,), shared_mem=64 * 4)


def test_runtime_shuffles_and_block_reductions(probes):
    x = np.arange(64, dtype=np.float32)
    out = np.zeros(64, np.float32)
    probes.get_function("shuffles")((1,), (64,), (x, out))
    lane = np.arange(64) % 32
    base = np.arange(64) - lane
    down = np.where(lane + 1 < 32, x + 1, x)
    np.testing.assert_array_equal(out, x[base + (lane ^ 3)] + 100 * down)
    flags, result = np.zeros(64, np.int32), np.zeros(64, np.int32)
    flags[[5, 50]] = 1
    probes.get_function("block_or")((1,), (64,), (flags, result))
    assert (result == 1 + 2 * 2).all()
    with pytest.raises(KernelError, match="__shfl_xor_sync at .* not reached by every lane"):
        probes.get_function("lanes_disagree")((1,), (64,), (out,))


# ---------------------------------------------------------------------------------------------------------------
# Mutation check: bugs seeded into copies of the kernels are caught
# ---------------------------------------------------------------------------------------------------------------

class MutatedRuntime(CpuRuntime):
    """A CpuRuntime whose modules are built from mutated copies of the kernel sources: each edit (file, old, new)
    replaces text that occurs exactly once; an edit of common.cuh goes into a copy of it first on the include path.
    Unoptimised, so that an uninitialised local reads the stack's poison (NaN)."""

    def __init__(self, edits, header_dir, **kw):
        super().__init__(optimize=False, **kw)
        self.edits, self.header_dir = edits, header_dir
        header_dir.mkdir(exist_ok=True)
        (header_dir / "common.cuh").write_text(self.mutate("common.cuh", COMMON_HEADER.read_text()))

    def mutate(self, file, text):
        for edit_file, old, new in self.edits:
            if edit_file == file:
                if text.count(old) != 1:
                    raise ValueError(f"the mutation's text occurs {text.count(old)} times in {file}: {old!r}")
                text = text.replace(old, new)
        return text

    def RawModule(self, code, options=()):  # noqa: N802
        file = code.split('"', 2)[1].rsplit("/", 1)[-1]  # the loader's #line 1 "gpu/kernels/<file>"
        options = tuple(f"-I{self.header_dir}" if o == f"-I{KERNEL_DIR}" else o for o in options)
        return super().RawModule(self.mutate(file, code), options)


F32, TC = "sliding_window_attention.cu", "sliding_window_attention_tc.cu"
LARGER_LAYOUT = (F32, "static constexpr int s_stride = BK + 1;", "static constexpr int s_stride = BK + 2;")
MUTATIONS = {  # name -> (edits, precision)
    "removed __syncthreads (scores -> softmax)": (
        [(F32, "        scores_to_smem(is_global_tile);  // pass 1\n        __syncthreads();\n",
          "        scores_to_smem(is_global_tile);  // pass 1\n")], "float32"),
    "removed __syncthreads (tile keys -> tile rows, tensor cores)": (
        [(TC, "key_pos, key_ok);\n        __syncthreads();\n        load_key_rows",
          "key_pos, key_ok);\n        load_key_rows")],
        "bfloat16"),
    "bound check after the read (band key kind)": (
        [("common.cuh", "ok = pos < band_hi && kind_b[pos] == LOCAL;", "ok = kind_b[pos] == LOCAL && pos < band_hi;")],
        "float32"),
    "off-by-one in the band test": (
        [("common.cuh", "(unsigned)(off + reach_back) <= (unsigned)", "(unsigned)(off + reach_back) < (unsigned)")],
        "float32"),
    "__syncthreads in a divergent branch": (
        [(F32, "if (sm_half == 0) row_alpha[sm_row] = alpha;",
          "if (sm_half == 0) { row_alpha[sm_row] = alpha; __syncthreads(); }")], "float32"),
    "layout larger than the launcher's size": ([LARGER_LAYOUT], "float32"),
    "layout larger than the launcher's size, its check removed": (
        [LARGER_LAYOUT, (F32, "if (tid == 0 && dynamic_smem_bytes() < L::bytes) __trap();", "")], "float32"),
    "accumulator not zeroed (float32, registers)": (
        [(F32, "for (int c = 0; c < DMAX / 8; ++c) acc[a][c] = 0.0f;", "for (int c = 0; c < DMAX / 8; ++c) {}")],
        "float32"),
    "accumulator not zeroed (tensor cores, shared memory)": (
        [(TC, "for (int e = tid; e < BQ * L::o_ld; e += NTHREADS) Of[e] = 0.0f;", "")], "float16"),
    "wrong shuffle partner": (
        [(F32, "sum += __shfl_xor_sync(0xffffffffu, sum, 1);", "sum += __shfl_xor_sync(0xffffffffu, sum, 2);")],
        "float32"),
}
MUTATION_CASES = ["N = block + 1", "globals > one key tile", "N below one block, W > N"]


def how_caught(name, tmp_path):
    """How the harness catches mutation `name`: the first failure's message, or None if every run passes."""
    edits, precision = MUTATIONS[name]
    for case in MUTATION_CASES:
        for schedule in SCHEDULES:
            be = CupyBackend(precision, runtime=MutatedRuntime(edits, tmp_path / "kernels", schedule=schedule))
            try:
                run_attention(be, make_case(case, seed=3), precision, what=f"{case} ({schedule})")
            except KernelError as e:
                return f"KernelError ({case}, {schedule}): {e}"
            except AssertionError as e:
                return f"wrong result ({case}, {schedule}): {' '.join(str(e).split())[:240]}"
    return None


@needs_cuda_headers
@pytest.mark.parametrize("name", MUTATIONS)
def test_seeded_bug_is_caught(name, tmp_path):
    """Each bug, seeded into a copy of a kernel, fails a launch or changes a result under some schedule."""
    caught = how_caught(name, tmp_path)
    assert caught is not None, f"the harness missed: {name}"
    if os.environ.get("CUDA_CPU_REPORT"):
        print(f"\n{name}: {caught}")


# ---------------------------------------------------------------------------------------------------------------
# AddressSanitizer + UndefinedBehaviorSanitizer build of every kernel
# ---------------------------------------------------------------------------------------------------------------

SANITIZED_RUN = textwrap.dedent('''
    import sys
    sys.path[:0] = [{tests!r}, {tests_gpu!r}]
    from test_cpu_runtime import *
    for precision in ["float32"] + (["float16", "bfloat16"] if cpu_runtime.cuda_include_dir() else []):
        for name in ["N = block + 1", "globals > one key tile", "D = 100 (padded to 128)"]:
            be = CupyBackend(precision, runtime=CpuRuntime(schedule="shuffle", sanitize=True))
            run_attention(be, make_case(name, seed=4), precision, what=name)
    be = CupyBackend(runtime=CpuRuntime(sanitize=True))
    x = np.random.default_rng(0).standard_normal((3, 37), dtype=np.float32)
    assert np.isfinite(be.gelu(x)).all() and np.isfinite(be.layer_norm(x, x[0], x[0], 1e-5)).all()
    print("sanitized run: ok")
''')


@pytest.mark.slow
def test_kernels_under_address_and_undefined_behaviour_sanitizers():
    """Out-of-bounds accesses within an argument's page, use of freed stack, misaligned or overflowing arithmetic:
    an ASan + UBSan build of the three kernel files runs the cases clean."""
    libasan = subprocess.run([cpu_runtime.compiler(), "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("g++ has no libasan")
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = SANITIZED_RUN.format(tests=tests, tests_gpu=os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0:allow_user_segv_handler=1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env,
                          cwd=os.path.dirname(tests))
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "sanitized run: ok" in log, log[-6000:]
    assert "runtime error" not in log and "ERROR: AddressSanitizer" not in log, log[-6000:]


# ---------------------------------------------------------------------------------------------------------------
# The whole model through the CPU-run kernels
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [{}, {"attention_dilation": [1, [1, 2, 1, 3], 2]}])
def test_model_on_cpu_run_kernels_equals_numpy(checkpoint_factory, window):
    """A LongformerModel forward (3 layers, per-layer windows, padding, globals; dilated heads) with CupyBackend
    on the CPU runtime equals the NumPy backend: the launchers as the model calls them, layer after layer."""
    from refimpl.model import LongformerModel

    directory, _ = checkpoint_factory("LongformerModel", **window)
    rng = np.random.default_rng(4)
    ids, mask, glob = random_inputs(rng, 3, 77, pad_rows={1: 50, 2: 9}, n_global={0: 2, 1: 1})
    outputs = {}
    for name, be in (("numpy", "numpy"), ("cupy on the CPU", backend())):
        model = LongformerModel.from_pretrained(directory, backend=be)
        outputs[name] = model(ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True)
    ref, got = outputs["numpy"], outputs["cupy on the CPU"]
    assert_close(got.last_hidden_state, ref.last_hidden_state, atol=BACKEND_ATOL, rtol=0, what="last_hidden_state")
    for layer, (a, e) in enumerate(zip(got.attentions, ref.attentions)):
        assert_close(a, e, atol=BACKEND_PROBS_ATOL, rtol=BACKEND_PROBS_RTOL, what=f"attentions[{layer}]")
    for layer, (a, e) in enumerate(zip(got.global_attentions, ref.global_attentions)):
        assert_close(a, e, atol=BACKEND_PROBS_ATOL, rtol=BACKEND_PROBS_RTOL, what=f"global_attentions[{layer}]")
