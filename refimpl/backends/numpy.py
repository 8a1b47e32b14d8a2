"""The `numpy` backend: the reference itself. Each method is the readable code of refimpl/attention.py and
refimpl/ops.py, run on NumPy arrays; it is what every other backend is measured against."""

from __future__ import annotations

import numpy as np

from refimpl import attention, ops
from refimpl.backends.base import Backend, check_attention_inputs


class NumpyBackend(Backend):
    """Plain NumPy, readable first."""

    name = "numpy"
    xp = np

    def sliding_window_attention(self, q, k, v, kind, global_index, n_global, w, output_attentions, dilation=1,
                                 autoregressive=False):
        check_attention_inputs(q, k, v, kind, global_index, n_global, w, dilation, autoregressive)
        return attention.sliding_window_attention(q, k, v, kind, global_index, n_global, int(w), output_attentions,
                                                  dilation, autoregressive)

    def global_attention(self, q_g, hidden, kv_global, kind, slot_used):
        return attention.global_attention(q_g, hidden, kv_global, kind, slot_used, np)

    def layer_norm(self, x, weight, bias, eps):
        return ops.layer_norm(x, weight, bias, eps)

    def gelu(self, x, out=None):
        return ops.written_to(ops.gelu(x), out)
