"""Every backend's `sliding_window_attention` against the dense N x N oracle, on inputs hypothesis makes up.

The oracle (`refimpl.dense.dense_attention`) shares no band arithmetic with the backends: it masks a full score
matrix by comparing positions and softmaxes it in float64. Hypothesis draws the batch (1-3), heads (1-3), length
(1-300), head size (1-16), window (1 to past the input), trailing padding per row and global tokens per row, and
shrinks a failure to its smallest case. This catches what hand-picked cases miss: the last row group of a length
that is not a multiple of 4, a window exactly as long as the input, a row that is all padding or all global.

Each available backend runs (numpy, numba, cupy where a GPU is); the others are skipped with their reason.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refimpl
from conftest import (BACKEND_ATOL as ATOL, BACKEND_PROBS_ATOL as PROBS_ATOL, BACKEND_PROBS_RTOL as PROBS_RTOL,
                      assert_close)
from refimpl.attention import GLOBAL, LOCAL, PADDING, global_slots
from refimpl.dense import dense_attention, dense_to_local


BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=f"{name} backend: {reason}"))
            for name, reason in refimpl.available_backends().items()]


@st.composite
def attention_problems(draw):
    """(q, k, v, kind, global_index, n_global, w) as the model hands them to a backend."""
    B, H = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    N, D = draw(st.integers(1, 300)), draw(st.integers(1, 16))
    w = draw(st.integers(1, N + 5))
    kind = np.full((B, N), LOCAL, np.int8)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for row in range(B):
        kind[row, N - draw(st.integers(0, N)):] = PADDING  # trailing padding, possibly the whole row
        candidates = np.flatnonzero(kind[row] == LOCAL)
        n_global = draw(st.integers(0, min(len(candidates), 6)))
        kind[row, rng.choice(candidates, size=n_global, replace=False)] = GLOBAL
    q, k, v = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))
    q *= np.float32(1 / np.sqrt(D))  # q arrives scaled, as in the model
    global_index, n_global = global_slots(kind)
    return q, k, v, kind, global_index, n_global, w


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(problem=attention_problems())
def test_sliding_window_attention_equals_dense_oracle(name, problem):
    backend = refimpl.get_backend(name)
    q, k, v, kind, global_index, n_global, w = problem
    context, probs = backend.sliding_window_attention(*map(backend.asarray, problem[:6]), w, True)
    context, probs = backend.asnumpy(context), backend.asnumpy(probs)

    dense_context, dense_probs = dense_attention(q, k, v, q, k, v, kind, w)  # (B, H, N, D), (B, H, N, N)
    local = np.broadcast_to((kind == LOCAL)[:, None, :, None], context.shape)
    assert_close(np.where(local, context, 0), np.where(local, dense_context, 0), atol=ATOL, rtol=0, what="context")
    assert not context[~local].any(), "rows of padding and of global queries must be 0"
    assert_close(probs, dense_to_local(dense_probs, kind, w), atol=PROBS_ATOL, rtol=PROBS_RTOL, what="probs")
