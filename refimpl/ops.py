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
    x = x.clip(-ERF_CLAMP, ERF_CLAMP)
    x2 = x * x
    p = np.float32(ERF_P[0])
    for c in ERF_P[1:]:
        p = p * x2 + np.float32(c)
    q = np.float32(ERF_Q[0])
    for c in ERF_Q[1:]:
        q = q * x2 + np.float32(c)
    return x * p / q


def gelu(x):
    """The exact GELU of BERT and RoBERTa, x * Phi(x)."""
    return x * np.float32(0.5) * (np.float32(1.0) + erf(x * np.float32(1 / math.sqrt(2))))


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


# config.hidden_act -> the function; "gelu" goes through the backend (which may fuse it), the rest are xp-generic
SUPPORTED_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish", "tanh")


def activation(name: str, backend):
    """The activation called `name` (config.hidden_act), on the backend's arrays."""
    xp = backend.xp
    return {
        "gelu": backend.gelu,
        "relu": lambda x: xp.maximum(x, np.float32(0)),
        "gelu_new": lambda x: gelu_tanh(x, xp),
        "gelu_pytorch_tanh": lambda x: gelu_tanh(x, xp),
        "silu": lambda x: silu(x, xp),
        "swish": lambda x: silu(x, xp),
        "tanh": xp.tanh,
    }[name]
