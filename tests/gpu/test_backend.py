"""The cupy backend (gpu/) against the NumPy reference.

Tests marked `gpu` need an NVIDIA GPU and CuPy; without them they are skipped with the backend's own reason.
They run the kernels on inputs that stress the index arithmetic: N not a multiple of the 64-query block or the key
tile, W larger than N, no global tokens, more global tokens than one key tile, ragged padding and ragged global
counts (filler slots). float32 must equal the reference within the tolerances of conftest.py; the tensor-core path
(float16 / bfloat16) must equal the same computation with the inputs rounded as the kernel rounds them.

The tests without the marker run everywhere (CI has no GPU): the backend explains why it is unavailable, and a
NumPy emulation of the kernels' tile walk (the same block and tile bounds, masks, online softmax and probability
columns as the .cu files) equals the reference. That emulation is the only check of the kernels' indexing that a
machine without a GPU can make; keep it in step with gpu/kernels/sliding_window_attention*.cu.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import HALF_TOL, PROBS_ATOL, assert_close, random_inputs

from gpu.backend import BK_F32, BK_TC, BQ, unavailable_reason
from refimpl import attention
from refimpl.attention import LOCAL, global_slots

GPU_REASON = unavailable_reason()
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"cupy backend: {GPU_REASON}")

# The tensor-core path rounds q, k, v and p to 16 bits: against the float32 reference it is only this close
# (measured on the emulation below, CASES: float16 within 1.1e-3 absolute, bfloat16 within 7.5e-3).
# Against the emulation with the same rounding, the kernel differs by summation order and, rarely, by a p that
# rounds the other way (one 16-bit step: 2^-11 relative for float16, 2^-8 for bfloat16).
EMULATION_TOL = {"float16": dict(atol=1e-3, rtol=1e-2), "bfloat16": dict(atol=8e-3, rtol=2e-2)}


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------

# (B, H, N, D, W, padded length per row, global tokens per row): each case names what it would catch.
CASES = {
    "one token": (1, 1, 1, 8, 1, {}, {}),
    "N below one block, W > N": (2, 2, 37, 16, 50, {1: 20}, {0: 2}),
    "N = block": (1, 2, 64, 32, 8, {}, {0: 1}),
    "N = block + 1": (1, 1, 65, 32, 8, {}, {}),
    "no globals, several tiles": (2, 3, 200, 64, 40, {1: 150}, {}),
    "globals > one key tile": (2, 2, 211, 24, 12, {0: 190}, {0: 70, 1: 3}),
    "ragged globals, filler slots": (3, 2, 130, 48, 5, {2: 61}, {0: 4, 2: 1}),
    "D = 128, W = 256": (1, 2, 300, 128, 256, {}, {0: 5}),
    "D = 100 (padded to 128)": (1, 1, 97, 100, 7, {}, {0: 2}),
    "all padding but one row": (2, 1, 70, 16, 3, {1: 1}, {}),
}


def make_case(name, seed=0):
    B, H, N, D, W, pad_rows, n_glob = CASES[name]
    rng = np.random.default_rng(seed)
    _, mask, glob = random_inputs(rng, B, N, pad_rows=pad_rows, n_global=n_glob)
    kind = mask * (glob + 1)  # (B, N) 0 padding, 1 local, 2 global
    global_index, n_global = global_slots(kind)  # (B, G), (B,)
    q, k, v = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))  # (B, H, N, D)
    q *= np.float32(1 / np.sqrt(D))
    return q, k, v, kind.astype(np.int8), global_index, n_global, W


# ---------------------------------------------------------------------------------------------------------------
# The kernels' tile walk, in NumPy (one block at a time; the threads of a block as array axes)
# ---------------------------------------------------------------------------------------------------------------

def round_float16(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def round_bfloat16(a):
    """float32 -> bfloat16 -> float32, round to nearest even (as __float2bfloat16_rn); inputs are finite."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


ROUNDING = {"float32": lambda a: np.asarray(a, np.float32), "float16": round_float16, "bfloat16": round_bfloat16}


def emulate_kernel(q, k, v, kind, global_index, n_global, w, output_attentions, precision="float32"):
    """sliding_window_attention.cu (float32, 32-key tiles) or _tc.cu (16-bit inputs, 64-key tiles), emulated.

    Names follow the kernels: q0, band_lo, band_hi, n_glob_tiles, tile_start, key_pos, key_ok, m_run, l_run.
    """
    bk = BK_F32 if precision == "float32" else BK_TC
    rnd = ROUNDING[precision]  # to_t<T> then back to float, as the kernel loads its tiles
    B, H, N, D = q.shape
    G = global_index.shape[1]
    P = G + 2 * w + 1
    kind = np.asarray(kind).astype(np.int32)
    context = np.full((B, H, N, D), np.nan, np.float32)  # NaN: an element the walk forgot to write shows up
    probs = np.zeros((B, H, N, P), np.float32) if output_attentions else None
    written = np.zeros((B, H, N, P), np.int32)  # how often each probs element is written: at most once

    for bh in range(B * H):
        b, h = divmod(bh, H)
        n_g = min(int(n_global[b]), G)
        for q0 in range(0, N, BQ):  # blockIdx.x * BQ
            i = q0 + np.arange(BQ)  # (BQ,) the block's queries
            inside = i < N
            Qs = np.where(inside[:, None], rnd(q[b, h, np.minimum(i, N - 1)]), np.float32(0))  # (BQ, D)
            row_local = inside & (kind[b, np.minimum(i, N - 1)] == LOCAL)  # (BQ,)
            if not row_local.any():  # __syncthreads_or(my_local) == 0: write zeros, return
                context[b, h, i[inside]] = 0
                continue
            band_lo = max(0, q0 - w)
            band_hi = min(N, q0 + BQ + w)
            n_glob_tiles = -(-n_g // bk)
            n_tiles = n_glob_tiles + -(-(band_hi - band_lo) // bk)

            def load_tile(t):
                is_global_tile = t < n_glob_tiles
                tile_start = t * bk if is_global_tile else band_lo + (t - n_glob_tiles) * bk
                c = np.arange(bk)
                if is_global_tile:
                    s = tile_start + c  # slots
                    pos = np.where(s < n_g, global_index[b, np.minimum(s, G - 1)], 0)
                    ok = (s < n_g) & (pos >= 0) & (pos < N)
                else:
                    pos = tile_start + c
                    ok = (pos < band_hi) & (kind[b, np.minimum(pos, N - 1)] == LOCAL)
                key_pos = np.where(ok, pos, 0)
                Ks = np.where(ok[:, None], rnd(k[b, h, key_pos]), np.float32(0))  # (bk, D)
                Vs = np.where(ok[:, None], rnd(v[b, h, key_pos]), np.float32(0))  # (bk, D)
                return is_global_tile, tile_start, key_pos, ok, Ks, Vs

            def scores(is_global_tile, key_pos, key_ok, Ks):  # pass 1, masked with -inf
                S = Qs @ Ks.T  # (BQ, bk)
                visible = key_ok[None, :] & (is_global_tile | (np.abs(i[:, None] - key_pos[None, :]) <= w))
                return np.where(visible, S, np.float32(-np.inf))

            m_run = np.full(BQ, -np.inf, np.float32)
            l_run = np.zeros(BQ, np.float32)
            acc = np.zeros((BQ, D), np.float32)
            with np.errstate(invalid="ignore", over="ignore"):
                for t in range(n_tiles):
                    is_global_tile, tile_start, key_pos, key_ok, Ks, Vs = load_tile(t)
                    S = scores(is_global_tile, key_pos, key_ok, Ks)
                    # pass 2: online softmax
                    m_new = np.maximum(m_run, S.max(axis=1))
                    alpha = np.where(m_new == -np.inf, np.float32(1), np.exp(m_run - m_new))
                    p = rnd(np.where(S == -np.inf, np.float32(0), np.exp(S - m_new[:, None])))
                    l_run = l_run * alpha + p.sum(axis=1)
                    m_run = m_new
                    # pass 3
                    acc = acc * alpha[:, None] + p @ Vs

                rows = np.flatnonzero(inside)
                context[b, h, i[rows]] = np.where(row_local[rows, None], acc[rows] / l_run[rows, None], 0)

                if output_attentions:  # the second sweep
                    for t in range(n_tiles):
                        is_global_tile, tile_start, key_pos, key_ok, Ks, _ = load_tile(t)
                        S = scores(is_global_tile, key_pos, key_ok, Ks)
                        row, col = np.nonzero(inside[:, None] & row_local[:, None] & (S != -np.inf))
                        column = (tile_start + col if is_global_tile
                                  else G + (key_pos[col] - i[row] + w))
                        probs[b, h, i[row], column] = np.exp(S[row, col] - m_run[row]) / l_run[row]
                        np.add.at(written[b, h], (i[row], column), 1)

    assert written.max(initial=0) <= 1, "a probability column was written twice"
    assert not np.isnan(context).any(), "a context element was never written"
    return context, probs


def reference(q, k, v, kind, global_index, n_global, w, precision="float32"):
    """The NumPy reference on inputs rounded as the kernel rounds them (a no-op for float32)."""
    rnd = ROUNDING[precision]
    return attention.sliding_window_attention(rnd(q), rnd(k), rnd(v), kind, global_index, n_global, w, True)


@pytest.mark.parametrize("name", CASES)
def test_emulated_tile_walk_equals_reference(name):
    """Catches wrong band bounds, tile starts, masks, online-softmax rescaling and probs columns in the kernels."""
    q, k, v, kind, global_index, n_global, w = make_case(name)
    context, probs = emulate_kernel(q, k, v, kind, global_index, n_global, w, output_attentions=True)
    ref_context, ref_probs = reference(q, k, v, kind, global_index, n_global, w)
    assert_close(context, ref_context, what=f"{name}: context")
    assert_close(probs, ref_probs, atol=PROBS_ATOL, rtol=0, what=f"{name}: probs")


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["no globals, several tiles", "globals > one key tile", "D = 128, W = 256"])
def test_emulated_tensor_core_walk_is_close_to_reference(name, precision):
    """The 16-bit path: its 64-key tiles walk correctly, and HALF_TOL holds for the rounding it does."""
    q, k, v, kind, global_index, n_global, w = make_case(name)
    context, probs = emulate_kernel(q, k, v, kind, global_index, n_global, w, True, precision)
    ref_context, ref_probs = reference(q, k, v, kind, global_index, n_global, w)
    assert_close(context, ref_context, **HALF_TOL[precision], what=f"{name}: context ({precision})")
    assert_close(probs, ref_probs, **HALF_TOL[precision], what=f"{name}: probs ({precision})")


def test_thread_maps_cover_each_tile_once():
    """The thread -> element maps of sliding_window_attention.cu (128 threads) touch every element once.

    pass 1: thread (ty, tx) = (tid / 8, tid % 8) owns score rows ty*4 + a, columns tx + 8c (a, c < 4);
    pass 2: thread tid owns row tid / 2, columns (tid % 2) * BK/2 + j; pass 3: rows ty*4 + a, columns tx + 8c
    for c < DMAX/8. And the 16-bit kernel's pass 2: lane l of warp w owns row 16w + l/2, columns 2j + l % 2.
    """
    tid = np.arange(128)
    ty, tx = tid // 8, tid % 8
    a, c = np.arange(4), np.arange(4)
    rows = (ty[:, None, None] * 4 + a[None, :, None]) + 0 * c[None, None, :]
    cols = (tx[:, None, None] + 8 * c[None, None, :]) + 0 * a[None, :, None]
    hits = np.zeros((BQ, BK_F32), int)
    np.add.at(hits, (rows.ravel(), cols.ravel()), 1)
    assert (hits == 1).all()

    hits = np.zeros((BQ, BK_F32), int)
    j = np.arange(BK_F32 // 2)
    np.add.at(hits, (np.repeat(tid // 2, j.size), ((tid % 2)[:, None] * (BK_F32 // 2) + j).ravel()), 1)
    assert (hits == 1).all()

    for dmax in (32, 64, 128):
        cc = np.arange(dmax // 8)
        hits = np.zeros((BQ, dmax), int)
        r = np.broadcast_to(ty[:, None, None] * 4 + a[None, :, None], (128, 4, cc.size))
        d = np.broadcast_to(tx[:, None, None] + 8 * cc[None, None, :], (128, 4, cc.size))
        np.add.at(hits, (r.ravel(), d.ravel()), 1)
        assert (hits == 1).all()

    warp, lane = tid // 32, tid % 32
    j = np.arange(BK_TC // 2)
    hits = np.zeros((BQ, BK_TC), int)
    np.add.at(hits, (np.repeat(warp * 16 + lane // 2, j.size), (2 * j[None, :] + (lane % 2)[:, None]).ravel()), 1)
    assert (hits == 1).all()


# ---------------------------------------------------------------------------------------------------------------
# The launchers, with NumPy standing in for CuPy and Python functions for the kernels
# ---------------------------------------------------------------------------------------------------------------

class FakeKernel:
    """A kernel's C signature in Python: checks what the launcher passes, then computes it in NumPy."""

    max_dynamic_shared_size_bytes = 48 * 1024

    def __init__(self, file, name, compute):
        from gpu.loader import kernel_source

        assert 'extern "C" __global__' in kernel_source(file) and f" {name}(" in kernel_source(file), (
            f"the launcher asks for {name}, which {file} does not define")
        self.file, self.name, self.compute, self.launches = file, name, compute, []

    def __call__(self, grid, block, args, shared_mem=0):
        for a in args:
            assert isinstance(a, (np.ndarray, np.int32, np.int64, np.float32)), f"{self.name}: untyped argument {a!r}"
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous and a.dtype in (np.float32, np.int32), f"{self.name}: {a.dtype} array"
        self.launches.append((grid, block, shared_mem))
        self.compute(grid, block, shared_mem, *args)


def swa_kernel(precision):
    from gpu import backend as gb

    def compute(grid, block, shared_mem, q, k, v, kind, global_index, n_global, context, probs,
                H, N, D, G, W, write_probs):
        dmax = gb._dmax(int(D))
        smem = gb.swa_f32_smem_bytes(dmax) if precision == "float32" else gb.swa_tc_smem_bytes(dmax)
        assert shared_mem == smem and block == (gb.ATTENTION_THREADS,)
        B = grid[1] // H
        assert grid == (-(-N // BQ), B * H)
        shape = (B, int(H), int(N), int(D))
        q, k, v = (a.reshape(shape) for a in (q, k, v))
        gi = global_index.reshape(B, int(G)) if G else np.zeros((B, 0), np.int32)
        em_context, em_probs = emulate_kernel(q, k, v, kind, gi, n_global, int(W), bool(write_probs), precision)
        context.reshape(shape)[...] = em_context
        if write_probs:
            assert not probs.any(), "the launcher must zero-fill probs: the kernel writes visible columns only"
            probs.reshape(em_probs.shape)[...] = em_probs
    return compute


def bias_gelu(grid, block, shared_mem, x, bias, out, n, C, has_bias):
    from refimpl.ops import gelu

    assert n == x.size == out.size and block == (256,) and grid == (min(-(-n // 256), 1 << 20),)
    h = x.reshape(-1, int(C)) + (bias if has_bias else np.float32(0))
    out.reshape(-1, int(C))[...] = gelu(h)


def residual_layer_norm(grid, block, shared_mem, x, residual, weight, bias, out, C, eps, has_residual):
    from refimpl.ops import layer_norm

    rows = x.size // C
    assert grid == (rows,) and shared_mem == 4 * C
    h = x.reshape(rows, int(C)) + (residual.reshape(rows, int(C)) if has_residual else np.float32(0))
    out.reshape(rows, int(C))[...] = layer_norm(h, weight, bias, np.float32(eps))


@pytest.fixture
def numpy_launcher(monkeypatch):
    """A CupyBackend whose xp is NumPy and whose kernels are the Python stand-ins above."""
    import gpu.loader
    from gpu.backend import CupyBackend

    kernels = {}

    def get_kernel(file, name, options=()):
        if name not in kernels:
            if name.startswith("sliding_window_attention_"):
                precision = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[name.split("_")[3]]
                compute = swa_kernel(precision)
            else:
                compute = {"bias_gelu_f32": bias_gelu, "residual_layer_norm_f32": residual_layer_norm}[name]
            kernels[name] = FakeKernel(file, name, compute)
        return kernels[name]

    monkeypatch.setattr(gpu.loader, "get_kernel", get_kernel)

    def make(precision="float32"):
        backend = object.__new__(CupyBackend)  # no device to ask: set what __init__ would
        backend.xp, backend.precision, backend.smem_optin = np, precision, 227 * 1024
        return backend

    return make


@pytest.mark.parametrize("precision", ["float32", "float16"])
@pytest.mark.parametrize("name", ["one token", "globals > one key tile", "D = 100 (padded to 128)"])
def test_launcher_passes_what_the_kernel_reads(name, precision, numpy_launcher):
    """Catches a launcher that passes arguments out of order, untyped scalars, a wrong grid or shared-memory
    size, a kernel name the .cu file lacks, or probs that are not zero-filled."""
    backend = numpy_launcher(precision)
    q, k, v, kind, global_index, n_global, w = make_case(name)
    context, probs = backend.sliding_window_attention(q, k, v, kind, global_index, n_global, w, True)
    ref_context, ref_probs = reference(q, k, v, kind, global_index, n_global, w, precision)
    if precision == "float32":
        assert_close(context, ref_context, what="context")
        assert_close(probs, ref_probs, atol=PROBS_ATOL, rtol=0, what="probs")
    else:  # the reference on rounded inputs still has unrounded p
        assert_close(context, ref_context, **HALF_TOL[precision], what="context")
        assert_close(probs, ref_probs, **HALF_TOL[precision], what="probs")
    context_only, none = backend.sliding_window_attention(q, k, v, kind, global_index, n_global, w, False)
    assert none is None
    np.testing.assert_array_equal(context_only, context)


def test_launcher_checks_its_inputs(numpy_launcher):
    backend = numpy_launcher()
    q, k, v, kind, global_index, n_global, w = make_case("N = block")
    with pytest.raises(TypeError, match="float32"):
        backend.sliding_window_attention(q.astype(np.float64), k, v, kind, global_index, n_global, w, False)
    with pytest.raises(ValueError, match="C-contiguous"):
        backend.sliding_window_attention(np.asfortranarray(q), k, v, kind, global_index, n_global, w, False)
    with pytest.raises(ValueError, match="head sizes"):
        big = np.zeros(q.shape[:3] + (130,), np.float32)
        backend.sliding_window_attention(big, big, big, kind, global_index, n_global, w, False)


def test_elementwise_launchers(numpy_launcher):
    from refimpl.ops import gelu, layer_norm

    backend = numpy_launcher()
    rng = np.random.default_rng(5)
    x, residual = (rng.standard_normal((3, 5, 37), dtype=np.float32) for _ in range(2))
    weight, bias = (rng.standard_normal(37, dtype=np.float32) for _ in range(2))
    assert_close(backend.gelu(x), gelu(x))
    assert_close(backend.bias_gelu(x, bias), gelu(x + bias))
    assert_close(backend.layer_norm(x, weight, bias, 1e-5), layer_norm(x, weight, bias, 1e-5))
    assert_close(backend.residual_layer_norm(x, residual, weight, bias, 1e-5),
                 layer_norm(x + residual, weight, bias, 1e-5))


# ---------------------------------------------------------------------------------------------------------------
# Without a GPU: the backend says why, and gpu/ imports without CuPy
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(GPU_REASON is None, reason="a GPU is usable here: the backend is available")
def test_unavailable_backend_says_why():
    """Catches a silent fallback: without a GPU, asking for cupy must raise with the reason."""
    from refimpl.backends import available_backends, get_backend

    reason = available_backends()["cupy"]
    assert isinstance(reason, str) and reason
    with pytest.raises(ValueError, match="cupy") as raised:
        get_backend("cupy")
    assert reason in str(raised.value)


def test_reason_when_cupy_is_missing():
    """unavailable_reason never raises and names the install command when CuPy cannot be imported."""
    code = ("import sys; sys.modules['cupy'] = None\n"  # makes `import cupy` raise ImportError
            "import gpu, gpu.loader, gpu.backend\n"
            "print(gpu.backend.unavailable_reason())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cupy is not installed" in done.stdout and "longformer-lab[gpu]" in done.stdout


def test_loader_prefixes_line_directive():
    from gpu.loader import kernel_source

    assert kernel_source("elementwise.cu").startswith('#line 1 "gpu/kernels/elementwise.cu"\n')
    with pytest.raises(ValueError, match="no kernel file"):
        kernel_source("missing.cu")


# ---------------------------------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cupy_backend():
    from refimpl.backends import get_backend

    return get_backend("cupy")


def run_on_gpu(backend, q, k, v, kind, global_index, n_global, w, output_attentions):
    up = backend.asarray
    context, probs = backend.sliding_window_attention(
        up(q), up(k), up(v), up(kind), up(global_index), up(n_global), w, output_attentions)
    return backend.asnumpy(context), (None if probs is None else backend.asnumpy(probs))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("name", CASES)
def test_attention_equals_reference(name, cupy_backend):
    q, k, v, kind, global_index, n_global, w = make_case(name, seed=1)
    ref_context, ref_probs = reference(q, k, v, kind, global_index, n_global, w)
    context, probs = run_on_gpu(cupy_backend, q, k, v, kind, global_index, n_global, w, True)
    assert_close(context, ref_context, what=f"{name}: context")
    assert_close(probs, ref_probs, atol=PROBS_ATOL, rtol=0, what=f"{name}: probs")
    # without output_attentions: the same context, no probabilities (the first sweep alone)
    context_only, none = run_on_gpu(cupy_backend, q, k, v, kind, global_index, n_global, w, False)
    assert none is None
    np.testing.assert_array_equal(context_only, context)



@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["no globals, several tiles", "globals > one key tile", "D = 128, W = 256",
                                  "D = 100 (padded to 128)", "N below one block, W > N"])
def test_tensor_core_attention_equals_its_rounding(name, precision):
    """The WMMA kernel equals the emulation with the same rounding (EMULATION_TOL) and stays within HALF_TOL of the
    float32 reference."""
    from gpu.backend import CupyBackend

    backend = CupyBackend(precision=precision)
    q, k, v, kind, global_index, n_global, w = make_case(name, seed=2)
    context, probs = run_on_gpu(backend, q, k, v, kind, global_index, n_global, w, True)
    em_context, em_probs = emulate_kernel(q, k, v, kind, global_index, n_global, w, True, precision)
    assert_close(context, em_context, **EMULATION_TOL[precision], what=f"{name}: context vs emulation ({precision})")
    assert_close(probs, em_probs, **EMULATION_TOL[precision], what=f"{name}: probs vs emulation ({precision})")
    ref_context, ref_probs = reference(q, k, v, kind, global_index, n_global, w)
    assert_close(context, ref_context, **HALF_TOL[precision], what=f"{name}: context ({precision})")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", [(1, 1), (3, 37), (2, 5, 384), (4, 768), (7, 3072)])
def test_elementwise_kernels_equal_numpy(shape, cupy_backend):
    """bias + GELU and residual + LayerNorm, including widths that are not a multiple of a warp."""
    from refimpl.ops import gelu, layer_norm

    rng = np.random.default_rng(3)
    x, residual = (rng.standard_normal(shape, dtype=np.float32) * 3 for _ in range(2))
    C = shape[-1]
    weight, bias = rng.standard_normal(C, dtype=np.float32), rng.standard_normal(C, dtype=np.float32)
    be, up = cupy_backend, cupy_backend.asarray
    assert_close(be.asnumpy(be.gelu(up(x))), gelu(x), what="gelu")
    assert_close(be.asnumpy(be.bias_gelu(up(x), up(bias))), gelu(x + bias), what="bias_gelu")
    assert_close(be.asnumpy(be.layer_norm(up(x), up(weight), up(bias), 1e-5)), layer_norm(x, weight, bias, 1e-5),
                 what="layer_norm")
    assert_close(be.asnumpy(be.residual_layer_norm(up(x), up(residual), up(weight), up(bias), 1e-12)),
                 layer_norm(x + residual, weight, bias, 1e-12), what="residual_layer_norm")


@pytest.mark.gpu
@needs_gpu
def test_model_on_cupy_equals_numpy(checkpoint_factory):
    """A whole LongformerModel forward (3 layers, per-layer windows, padding, globals) on the GPU equals NumPy."""
    from refimpl.backends import asnumpy
    from refimpl.model import LongformerModel

    directory, _ = checkpoint_factory("LongformerModel")
    rng = np.random.default_rng(4)
    ids, mask, glob = random_inputs(rng, 3, 77, pad_rows={1: 50, 2: 9}, n_global={0: 2, 1: 1})
    outputs = {}
    for backend in ("numpy", "cupy"):
        model = LongformerModel.from_pretrained(directory, backend=backend)
        out = model(ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True,
                    output_hidden_states=True)
        outputs[backend] = out
    ref, got = outputs["numpy"], outputs["cupy"]
    assert_close(asnumpy(got.last_hidden_state), ref.last_hidden_state, what="last_hidden_state")
    if ref.pooler_output is not None:
        assert_close(asnumpy(got.pooler_output), ref.pooler_output, what="pooler_output")
    for layer, (a, e) in enumerate(zip(got.attentions, ref.attentions)):
        assert_close(asnumpy(a), e, atol=PROBS_ATOL, rtol=0, what=f"attentions[{layer}]")
    for layer, (a, e) in enumerate(zip(got.global_attentions, ref.global_attentions)):
        assert_close(asnumpy(a), e, atol=PROBS_ATOL, rtol=0, what=f"global_attentions[{layer}]")

