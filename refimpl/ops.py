"""The elementwise pieces of the model: erf, GELU, LayerNorm and the activations, written against an array module.

Every function here works on NumPy and CuPy arrays alike (only operators and methods of the array). Backends that
fuse these (the Numba kernels, the CUDA kernels) reuse the constants below, so there is one definition of each.
"""

from __future__ import annotations

import math

import numpy as np

# erf(x) as a rational function of x, exact to about 1e-7 (one float32 ulp near 1) on [-4, 4] and clamped outside,
# where erf is +-1 in float32 (Eigen's and XLA's float32 erf use the same approximation). NumPy has no erf.
ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
         -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
         -1.42647390514189e-02)
ERF_CLAMP = 4.0


def erf(x):
    """x * p(x^2) / q(x^2), both polynomials by Horner's rule. Each step updates its array in place (p *= x2;
    p += c computes p * x2 + c, rounded the same): on the FFN's (N, F) arrays a new array per step cost more
    than the arithmetic."""
    x = x.clip(-ERF_CLAMP, ERF_CLAMP)
    x2 = x * x
    p = x2 * np.float32(ERF_P[0])
    p += np.float32(ERF_P[1])
    for c in ERF_P[2:]:
        p *= x2
        p += np.float32(c)
    q = x2 * np.float32(ERF_Q[0])
    q += np.float32(ERF_Q[1])
    for c in ERF_Q[2:]:
        q *= x2
        q += np.float32(c)
    p *= x
    p /= q
    return p


def gelu(x):
    """The exact GELU of BERT and RoBERTa, x * Phi(x) = x / 2 * (1 + erf(x / sqrt 2))."""
    y = erf(x * np.float32(1 / math.sqrt(2)))
    y += np.float32(1.0)
    y *= x
    y *= np.float32(0.5)  # exact: halving commutes with rounding
    return y


def gelu_tanh(x, xp=np):
    """GELU's tanh approximation (transformers' "gelu_new" and "gelu_pytorch_tanh")."""
    return np.float32(0.5) * x * (1 + xp.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x ** 3)))


def silu(x, xp=np):
    return x / (1 + xp.exp(-x))


def layer_norm(x, weight, bias, eps):
    """LayerNorm over the last axis with torch's biased variance. x (..., C); weight, bias (C,)."""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1), biased as torch's
    return (x - mean) / (var + np.float32(eps)) ** np.float32(0.5) * weight + bias


def written_to(y, out=None):
    """y, or y copied into `out` and `out` returned: the `out=` of a function that computes a fresh array."""
    if out is None:
        return y
    out[...] = y
    return out


# config.hidden_act -> the function; "gelu" goes through the backend (which may fuse it), the rest are xp-generic
SUPPORTED_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish", "tanh")


def activation(name: str, backend):
    """The activation called `name` (config.hidden_act) of a dense layer's product and bias, on the backend's
    arrays: f(x, bias, out=None) = act(x + bias), where `out` (an array of x's shape, x itself allowed) receives the
    result, so that the model needs no second (B, N, F) array. The exact GELU goes through the backend, which may
    add the bias in the same pass."""
    xp = backend.xp
    return {
        "gelu": backend.bias_gelu,
        "relu": lambda x, bias, out=None: xp.maximum(xp.add(x, bias, out=out), np.float32(0), out=out),
        "gelu_new": lambda x, bias, out=None: written_to(gelu_tanh(x + bias, xp), out),
        "gelu_pytorch_tanh": lambda x, bias, out=None: written_to(gelu_tanh(x + bias, xp), out),
        "silu": lambda x, bias, out=None: written_to(silu(x + bias, xp), out),
        "swish": lambda x, bias, out=None: written_to(silu(x + bias, xp), out),
        "tanh": lambda x, bias, out=None: xp.tanh(xp.add(x, bias, out=out), out=out),
    }[name]
