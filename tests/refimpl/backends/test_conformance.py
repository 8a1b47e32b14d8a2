"""Every method of the backend interface (refimpl.backends.base.Backend), on every backend that runs here, against
the NumPy reference backend: random inputs and the edge cases of the contract (N = 1, a window wider than N, every
token global, rows of padding). A backend that drifts from the interface or from the reference fails here.

Would catch: a backend missing a method the model calls (the benchmark's hand-copied dense backend once did), a
kernel that mishandles a short or fully global row, a fused LayerNorm or GELU off the reference.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import BACKEND_ATOL, BACKEND_PROBS_ATOL, BACKEND_PROBS_RTOL, assert_close

from refimpl import ops
from refimpl.attention import GLOBAL, LOCAL, PADDING, global_slots
from refimpl.backends import BACKENDS, available_backends, get_backend
from refimpl.backends.base import Backend

RUNNABLE = [name for name, why in available_backends().items() if why is None]
OTHERS = [name for name in RUNNABLE if name != "numpy"]

# name -> (B, H, N, D, W, kinds per row as a function of N)
CASES = {
    "N = 1": (1, 2, 1, 8, 3, lambda n: [[LOCAL]]),
    "window wider than N": (2, 2, 7, 8, 20, lambda n: [[LOCAL] * n, [LOCAL] * 5 + [PADDING] * 2]),
    "all global": (1, 2, 6, 8, 2, lambda n: [[GLOBAL] * n]),
    "all padding row": (2, 3, 9, 4, 2, lambda n: [[PADDING] * n, [GLOBAL] + [LOCAL] * (n - 1)]),
    "mixed": (2, 2, 40, 16, 5, lambda n: [[GLOBAL] + [LOCAL] * 30 + [PADDING] * 9,
                                          [LOCAL] * 10 + [GLOBAL, GLOBAL] + [LOCAL] * 28]),
    "wide": (1, 4, 130, 32, 16, lambda n: [[LOCAL] * 64 + [GLOBAL] + [LOCAL] * 65]),
}


def attention_inputs(name):
    B, H, N, D, W, kinds = CASES[name]
    rng = np.random.default_rng(len(name))
    q, k, v = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))
    kind = np.array(kinds(N), np.int8)
    global_index, n_global = global_slots(kind)
    return q, k, v, kind, global_index, n_global, W


def test_every_registered_backend_implements_the_interface():
    """Each registered class is a Backend with no abstract method left, and overrides keep the interface's
    parameter names (the model calls them by position and by name)."""
    for name in RUNNABLE:
        backend = get_backend(name)
        assert isinstance(backend, Backend) and backend.name == name
        assert not getattr(type(backend), "__abstractmethods__", None)
        for method, spec in inspect.getmembers(Backend, inspect.isfunction):
            if method.startswith("_"):
                continue
            ours = inspect.signature(getattr(type(backend), method))
            assert list(ours.parameters)[:len(inspect.signature(spec).parameters)] == \
                list(inspect.signature(spec).parameters), f"{name}.{method}{ours} differs from the interface"
    assert set(BACKENDS) >= {"numpy", "numba", "dense", "cupy"}


@pytest.mark.parametrize("backend_name", OTHERS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("output_attentions", [False, True])
def test_sliding_window_attention(backend_name, case, output_attentions):
    backend, reference = get_backend(backend_name), get_backend("numpy")
    q, k, v, kind, global_index, n_global, w = attention_inputs(case)
    up = backend.asarray
    context, probs = backend.sliding_window_attention(up(q), up(k), up(v), up(kind), up(global_index),
                                                      up(n_global), w, output_attentions)
    ref_context, ref_probs = reference.sliding_window_attention(q, k, v, kind, global_index, n_global, w,
                                                                output_attentions)
    assert_close(backend.asnumpy(context), ref_context, atol=BACKEND_ATOL, rtol=0, what="context")
    if output_attentions:
        assert_close(backend.asnumpy(probs), ref_probs, atol=BACKEND_PROBS_ATOL, rtol=BACKEND_PROBS_RTOL, what="probs")
    else:
        assert probs is None


@pytest.mark.parametrize("backend_name", OTHERS)
@pytest.mark.parametrize("case", ["all global", "all padding row", "mixed"])
def test_global_attention(backend_name, case):
    backend, reference = get_backend(backend_name), get_backend("numpy")
    rng = np.random.default_rng(7)
    _, _, _, kind, global_index, n_global, _ = attention_inputs(case)
    B, N = kind.shape
    H, D = 2, 8
    C = H * D
    G = global_index.shape[1]
    q_g = rng.standard_normal((B, H, G, D), dtype=np.float32)
    hidden = rng.standard_normal((B, N, C), dtype=np.float32)
    kv_global = (rng.standard_normal((2 * C, C), dtype=np.float32) * 0.1, rng.standard_normal(2 * C, dtype=np.float32))
    slot_used = np.arange(G)[None, :] < n_global[:, None]
    up = backend.asarray
    context, probs = backend.global_attention(up(q_g), up(hidden), tuple(map(up, kv_global)), up(kind), up(slot_used))
    ref_context, ref_probs = reference.global_attention(q_g, hidden, kv_global, kind, slot_used)
    assert_close(backend.asnumpy(context), ref_context, atol=BACKEND_ATOL, rtol=0, what="global context")
    assert_close(backend.asnumpy(probs), ref_probs, atol=BACKEND_PROBS_ATOL, rtol=BACKEND_PROBS_RTOL,
                 what="global probs")


@pytest.mark.parametrize("backend_name", OTHERS)
@pytest.mark.parametrize("count", [1, 2, 3])
def test_project(backend_name, count):
    """The stacked projections into heads, each scaled by its number (the numba backend fuses the bias, the scale
    and the split): the reference's arrays times the scales, each (B, H, N, D) and C-contiguous, as the kernels
    expect."""
    backend, reference = get_backend(backend_name), get_backend("numpy")
    rng = np.random.default_rng(count)
    B, N, C, H = 2, 7, 24, 3
    x = rng.standard_normal((B, N, C), dtype=np.float32)
    weight_bias = (rng.standard_normal((count * C, C), dtype=np.float32),
                   rng.standard_normal(count * C, dtype=np.float32))
    scales = (0.125, 1, 3.0)[:count]
    got = backend.project(backend.asarray(x), tuple(backend.asarray(a) for a in weight_bias), count, H, scales)
    want = reference.project(x, weight_bias, count, H)
    assert len(got) == len(want) == count
    for g, r, scale in zip(got, want, scales):
        assert g.shape == (B, H, N, C // H) and g.flags.c_contiguous
        assert_close(backend.asnumpy(g), r * np.float32(scale), atol=BACKEND_ATOL * 3, rtol=0, what="project")


@pytest.mark.parametrize("backend_name", RUNNABLE)
@pytest.mark.parametrize("scales", [(1.0,), (1, 2, 3, 4), (float("nan"), 1, 1), (True, 1, 1), ("2", 1, 1), 5])
def test_project_refuses_bad_scales(backend_name, scales):
    """Not one finite number per projection: a ValueError that says what is allowed."""
    backend = get_backend(backend_name)
    x = np.zeros((1, 4, 6), np.float32)
    weight_bias = (np.zeros((18, 6), np.float32), np.zeros(18, np.float32))
    with pytest.raises(ValueError, match="scales must be 3 finite numbers"):
        backend.project(backend.asarray(x), tuple(backend.asarray(a) for a in weight_bias), 3, 2, scales)


@pytest.mark.parametrize("backend_name", RUNNABLE)
@pytest.mark.parametrize("n_tokens, width", [(1, 8), (21, 64), (4096, 3072), (65536, 3072), (10 ** 6, 4096)])
def test_feed_forward_rows(backend_name, n_tokens, width):
    """None (all tokens at once) or a block size in [1, n_tokens]; the model takes the blocks in order."""
    rows = get_backend(backend_name).feed_forward_rows(n_tokens, width)
    assert rows is None or (isinstance(rows, int) and 1 <= rows <= n_tokens), rows


@pytest.mark.parametrize("backend_name", OTHERS)
@pytest.mark.parametrize("shape", [(1, 1, 8), (2, 5, 32), (3, 768)])
def test_elementwise(backend_name, shape):
    backend, reference = get_backend(backend_name), get_backend("numpy")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape, dtype=np.float32) * 3
    residual = rng.standard_normal(shape, dtype=np.float32)
    weight = rng.standard_normal(shape[-1], dtype=np.float32)
    bias = rng.standard_normal(shape[-1], dtype=np.float32)
    up, down = backend.asarray, backend.asnumpy
    assert_close(down(backend.gelu(up(x))), reference.gelu(x), atol=BACKEND_ATOL, rtol=0, what="gelu")
    # out=: the model writes the GELU over its FFN product; x itself and another array both receive the result
    x_dev, other = up(x.copy()), up(np.zeros_like(x))
    assert backend.gelu(x_dev, out=x_dev) is x_dev and backend.gelu(up(x), out=other) is other
    for got in (x_dev, other):
        assert_close(down(got), reference.gelu(x), atol=BACKEND_ATOL, rtol=0, what="gelu into out")
    x_dev = up(x.copy())  # the FFN's call: the dense's product and its bias, written over the product
    assert backend.bias_gelu(x_dev, up(bias), out=x_dev) is x_dev
    assert_close(down(x_dev), reference.bias_gelu(x, bias), atol=BACKEND_ATOL, rtol=0, what="bias_gelu")
    assert_close(down(backend.layer_norm(up(x), up(weight), up(bias), 1e-5)),
                 reference.layer_norm(x, weight, bias, 1e-5), atol=BACKEND_ATOL, rtol=0, what="layer_norm")
    assert_close(down(backend.residual_layer_norm(up(x), up(residual), up(weight), up(bias), 1e-5)),
                 reference.residual_layer_norm(x, residual, weight, bias, 1e-5), atol=BACKEND_ATOL, rtol=0,
                 what="residual_layer_norm")
    # the model's call: a dense layer's product and its bias, then the residual (x + x_bias + residual)
    want = ops.layer_norm(x + bias[::-1] + residual, weight, bias, 1e-5)
    assert_close(down(backend.residual_layer_norm(up(x), up(residual), up(weight), up(bias), 1e-5,
                                                  x_bias=up(bias[::-1].copy()))),
                 want, atol=BACKEND_ATOL, rtol=0, what="residual_layer_norm with x_bias")
    for bad in (bias[:1], np.ones(shape[-1] + 1, np.float32)):  # broadcastable or too long: refused alike
        with pytest.raises(ValueError, match=rf"x_bias must have shape \({shape[-1]},\) \(x's last axis\), got"):
            backend.residual_layer_norm(up(x), up(residual), up(weight), up(bias), 1e-5, x_bias=up(bad.copy()))


@pytest.mark.parametrize("backend_name", RUNNABLE)
def test_the_attention_contract_is_checked_the_same_way(backend_name):
    """One input check for every backend: a wrong dtype, shape or window is refused with the same message."""
    backend = get_backend(backend_name)
    q, k, v, kind, global_index, n_global, w = attention_inputs("mixed")
    up = backend.asarray
    with pytest.raises(TypeError, match="q must be float32"):
        backend.sliding_window_attention(up(q.astype(np.float64)), up(k), up(v), up(kind), up(global_index),
                                         up(n_global), w, False)
    with pytest.raises(ValueError, match="share one shape"):
        backend.sliding_window_attention(up(q[:, :1]), up(k), up(v), up(kind), up(global_index), up(n_global), w,
                                         False)
    with pytest.raises(ValueError, match="window must be >= 1"):
        backend.sliding_window_attention(up(q), up(k), up(v), up(kind), up(global_index), up(n_global), 0, False)
    with pytest.raises(ValueError, match="kind must have shape"):
        backend.sliding_window_attention(up(q), up(k), up(v), up(kind[:, 1:]), up(global_index), up(n_global), w,
                                         False)


def test_unknown_and_wrongly_typed_backends_are_refused():
    for bad in ("jax", None, 3, object()):
        with pytest.raises(ValueError, match="backend"):
            get_backend(bad)
