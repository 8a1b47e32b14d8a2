"""The cupy backend (gpu/) on a GPU, against the NumPy reference; and, without one, that it says why.

Tests marked `gpu` need an NVIDIA GPU and CuPy; without them they are skipped with the backend's own reason.
They run the kernels on inputs that stress the index arithmetic (kernel_cases.py): N not a multiple of the
64-query block or the key tile, W larger than N, no global tokens, more global tokens than one key tile, ragged
padding and ragged global counts (filler slots). float32 must equal the reference within the tolerances of
conftest.py; the tensor-core path (float16 / bfloat16) must stay within HALF_TOL of it, and equal the same .cu file
run on the CPU (test_cpu_runtime.py runs every kernel there, on every commit) up to summation order.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import HALF_TOL, PROBS_ATOL, assert_close, random_inputs
from kernel_cases import CASES, make_case, reference

from gpu.backend import unavailable_reason

GPU_REASON = unavailable_reason()
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"cupy backend: {GPU_REASON}")

# The GPU's tensor-core kernel against the same kernel run on the CPU (gpu/cpu_runtime): they differ by summation
# order inside the 16x16x16 products and, rarely, by a p that rounds the other way (one 16-bit step: 2^-11
# relative for float16, 2^-8 for bfloat16).
CPU_RUN_TOL = {"float16": dict(atol=1e-3, rtol=1e-2), "bfloat16": dict(atol=8e-3, rtol=2e-2)}


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
@pytest.mark.parametrize("window", [dict(dilation=[1, 3]), dict(autoregressive=True),
                                    dict(autoregressive=True, dilation=[2, 1])])
def test_dilated_and_autoregressive_windows_equal_reference(window, cupy_backend):
    """Issue #15's windows on the GPU: band slot t of query i is key i + d (t - W); autoregressive keys j <= i."""
    q, k, v, kind, _, _, w = make_case("no globals, several tiles", seed=6)
    global_index, n_global = np.zeros((q.shape[0], 0), np.int64), np.zeros(q.shape[0], np.int64)
    ref_context, ref_probs = reference(q, k, v, kind, global_index, n_global, w, **window)
    up = cupy_backend.asarray
    context, probs = cupy_backend.sliding_window_attention(up(q), up(k), up(v), up(kind), up(global_index),
                                                           up(n_global), w, True, **window)
    assert_close(cupy_backend.asnumpy(context), ref_context, what=f"{window}: context")
    assert_close(cupy_backend.asnumpy(probs), ref_probs, atol=PROBS_ATOL, rtol=0, what=f"{window}: probs")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["no globals, several tiles", "globals > one key tile", "D = 128, W = 256",
                                  "D = 100 (padded to 128)", "N below one block, W > N"])
def test_tensor_core_attention_equals_its_cpu_run(name, precision):
    """The WMMA kernel on the GPU equals the same kernel run on the CPU (CPU_RUN_TOL) and stays within HALF_TOL of
    the float32 reference."""
    from gpu.backend import CupyBackend
    from gpu import cpu_runtime
    from gpu.cpu_runtime import CpuRuntime

    q, k, v, kind, global_index, n_global, w = make_case(name, seed=2)
    context, probs = run_on_gpu(CupyBackend(precision=precision), q, k, v, kind, global_index, n_global, w, True)
    if cpu_runtime.unavailable_reason() is None and cpu_runtime.cuda_include_dir() is not None:  # g++, cuda_fp16.h
        cpu = CupyBackend(precision=precision, runtime=CpuRuntime())
        cpu_context, cpu_probs = cpu.sliding_window_attention(q, k, v, kind, global_index, n_global, w, True)
        assert_close(context, cpu_context, **CPU_RUN_TOL[precision], what=f"{name}: context vs CPU run ({precision})")
        assert_close(probs, cpu_probs, **CPU_RUN_TOL[precision], what=f"{name}: probs vs CPU run ({precision})")
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



def test_cupy_runtime_reads_the_device(monkeypatch):
    """CupyRuntime (the GPU's side of the runtime seam) with a stand-in cupy module: it takes cupy's arrays and
    RawModule, the compute capability and the opt-in shared-memory limit, and asnumpy is cupy's. Catches a typo in
    code that only a GPU would otherwise run."""
    import types

    from gpu.backend import CupyRuntime

    runtime_api = types.SimpleNamespace(cudaDevAttrMaxSharedMemoryPerBlockOptin=97,
                                        deviceGetAttribute=lambda attribute, device: 232448 if attribute == 97 else 0)
    fake = types.SimpleNamespace(
        RawModule=object, asnumpy=lambda a: ("host", a),
        cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(compute_capability="90", id=0),
                                   runtime=runtime_api))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    runtime = CupyRuntime()
    assert runtime.xp is fake and runtime.RawModule is object
    assert runtime.compute_capability == (9, 0) and runtime.smem_optin == 232448
    assert runtime.asnumpy(1) == ("host", 1)
