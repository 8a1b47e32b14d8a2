"""The paper's three sliding windows (section 3.1, Figure 2): plain, dilated (per head) and autoregressive, on every
backend, against two independent checks: the dense n x n oracle (refimpl/dense.py, written from the paper as
comparisons of positions) and PyTorch's FlexAttention with a mask_mod of the same pattern.

Would catch: a dilated band that reads key i + t - W instead of i + d (t - W), a residue class of a dilated head
skipped, heads given each other's dilation, an autoregressive window that lets a query see a later key (the
causality test changes only later tokens and asserts that nothing before them moves), a band layout off by a slot.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKEND_ATOL, BACKEND_PROBS_ATOL, BACKEND_PROBS_RTOL, SMALL, assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refimpl
from refimpl.attention import GLOBAL, LOCAL, PADDING, global_slots, sliding_window_attention
from refimpl.backends import available_backends, get_backend
from refimpl.dense import dense_attention, dense_to_local

RUNNABLE = [name for name, why in available_backends().items() if why is None]


@st.composite
def window_cases(draw):
    B = draw(st.integers(1, 2))
    H = draw(st.integers(1, 3))
    N = draw(st.integers(1, 40))
    w = draw(st.integers(1, 12))
    per_head = draw(st.booleans())
    dilation = [draw(st.integers(1, 4)) for _ in range(H)] if per_head else draw(st.integers(1, 4))
    autoregressive = draw(st.booleans())
    kind = np.full((B, N), LOCAL, np.int8)
    for b in range(B):
        keep = draw(st.integers(1, N))
        kind[b, keep:] = PADDING
        if not autoregressive:
            for i in draw(st.lists(st.integers(0, keep - 1), max_size=3, unique=True)):
                kind[b, i] = GLOBAL
    seed = draw(st.integers(0, 2**16))
    return B, H, N, w, dilation, autoregressive, kind, seed


def inputs(B, H, N, seed, D=8):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, H, N, D), dtype=np.float32) * 0.7 for _ in range(3)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window_cases())
def test_every_backend_equals_the_dense_oracle(case):
    B, H, N, w, dilation, autoregressive, kind, seed = case
    q, k, v = inputs(B, H, N, seed)
    global_index, n_global = global_slots(kind)
    dense_context, dense_probs = dense_attention(q, k, v, q, k, v, kind, w, dilation, autoregressive)
    expected_probs = dense_to_local(dense_probs, kind, w, dilation, autoregressive)
    local_rows = (kind == LOCAL)[:, None, :, None]
    for name in RUNNABLE:
        backend = get_backend(name)
        up = backend.asarray
        context, probs = backend.sliding_window_attention(up(q), up(k), up(v), up(kind), up(global_index),
                                                          up(n_global), w, True, dilation, autoregressive)
        assert_close(backend.asnumpy(context) * local_rows, dense_context * local_rows, atol=BACKEND_ATOL,
                     rtol=0, what=f"{name}: context")
        assert_close(backend.asnumpy(probs), expected_probs, atol=BACKEND_PROBS_ATOL, rtol=BACKEND_PROBS_RTOL,
                     what=f"{name}: probs")


def test_dilation_one_is_the_plain_window_and_autoregressive_keeps_the_first_half():
    """The new parameters at their defaults change nothing, and the autoregressive band is the plain band's first
    W+1 slots renormalised (same scores, fewer keys)."""
    B, H, N, w = 1, 2, 30, 4
    q, k, v = inputs(B, H, N, 1)
    kind = np.full((B, N), LOCAL, np.int8)
    gi, ng = global_slots(kind)
    plain = sliding_window_attention(q, k, v, kind, gi, ng, w, True)
    ones = sliding_window_attention(q, k, v, kind, gi, ng, w, True, dilation=[1] * H, autoregressive=False)
    np.testing.assert_array_equal(plain[0], ones[0])
    np.testing.assert_array_equal(plain[1], ones[1])
    _, causal = sliding_window_attention(q, k, v, kind, gi, ng, w, True, autoregressive=True)
    assert causal.shape == (B, H, N, w + 1)
    half = plain[1][..., :w + 1]
    assert_close(causal, half / half.sum(-1, keepdims=True), atol=BACKEND_PROBS_ATOL, rtol=BACKEND_PROBS_RTOL,
                 what="causal band")


def test_the_dilated_band_reads_every_d_th_key():
    """Slot t of query i holds key i + d (t - W): a value that is one-hot at key 20 shows up only in the slots
    whose key is 20, in every head with its own dilation."""
    B, H, N, w = 1, 3, 41, 3
    dilation = [1, 2, 5]
    q = np.zeros((B, H, N, 4), np.float32)  # uniform attention over the visible keys
    k = np.zeros_like(q)
    v = np.zeros_like(q)
    v[..., 20, 0] = 1
    kind = np.full((B, N), LOCAL, np.int8)
    gi, ng = global_slots(kind)
    context, probs = sliding_window_attention(q, k, v, kind, gi, ng, w, True, dilation=dilation)
    for h, d in enumerate(dilation):
        sees = [i for i in range(N) if abs(i - 20) <= w * d and (i - 20) % d == 0]
        assert np.flatnonzero(context[0, h, :, 0]).tolist() == sees, f"head {h} (d={d})"
        i = 20 + d  # its slot for key 20 is t = W - 1
        assert probs[0, h, i, w - 1] > 0 and probs[0, h, i].sum() == pytest.approx(1)


@pytest.mark.slow
@pytest.mark.parametrize("dilation, autoregressive, globals_", [(2, False, (0, 17)), ([1, 3], False, ()),
                                                                 ([2, 1], True, ())])
def test_flex_attention_agrees(dilation, autoregressive, globals_):
    """An independent second check: torch.compile(flex_attention) with a mask_mod of the same pattern (dilated
    band over local keys, causal, global columns) computes the local rows' context."""
    torch = pytest.importorskip("torch")
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    B, H, N, w, D = 1, 2, 96, 6, 16
    q, k, v = inputs(B, H, N, 5, D)
    kind = np.full((B, N), LOCAL, np.int8)
    kind[0, 90:] = PADDING
    kind[0, list(globals_)] = GLOBAL
    gi, ng = global_slots(kind)
    context, _ = sliding_window_attention(q, k, v, kind, gi, ng, w, False, dilation, autoregressive)

    d_of_head = torch.tensor([dilation] * H if np.ndim(dilation) == 0 else dilation)
    key_kind = torch.tensor(kind[0], dtype=torch.int64)

    def mask_mod(b, h, i, j):
        d = d_of_head[h]
        near = ((i - j).abs() <= w * d) & ((i - j) % d == 0)
        if autoregressive:
            near = near & (j <= i)
        return (near & (key_kind[j] == LOCAL)) | (key_kind[j] == GLOBAL)

    block_mask = create_block_mask(mask_mod, B, H, N, N, device="cpu")
    scale = 1.0  # q is already scaled, as the contract says
    flex = torch.compile(flex_attention)(*(torch.from_numpy(a) for a in (q, k, v)), block_mask=block_mask,
                                         scale=scale).numpy()
    local = (kind == LOCAL)[:, None, :, None]
    assert_close(context * local, flex * local, atol=BACKEND_ATOL, rtol=0, what="context vs FlexAttention")


def small_model(tmp_path_factory=None, **config):
    cfg = refimpl.LongformerConfig(**{**SMALL, **config})
    return refimpl.LongformerModel(cfg, seed=0)


def test_an_autoregressive_model_never_reads_ahead():
    """Change only the tokens after position p: every output at positions <= p stays exactly as it was."""
    model = small_model(autoregressive=True, attention_dilation=[1, 2, [1, 3, 1, 2]])
    rng = np.random.default_rng(0)
    ids = rng.integers(3, SMALL["vocab_size"], size=(1, 50))
    changed = ids.copy()
    changed[0, 31:] = rng.integers(3, SMALL["vocab_size"], size=19)
    before = model(ids, output_attentions=True)
    after = model(changed)
    np.testing.assert_array_equal(before.last_hidden_state[0, :31], after.last_hidden_state[0, :31])
    assert not np.allclose(before.last_hidden_state[0, 31:], after.last_hidden_state[0, 31:])
    assert before.attentions[0].shape == (1, SMALL["num_attention_heads"], 50, SMALL["attention_window"][0] // 2 + 1)
    with pytest.raises(ValueError, match="autoregressive attention has no global tokens"):
        model(ids, global_attention_mask=np.eye(1, 50, dtype=np.int64))


def test_dilated_config_round_trips_and_runs_on_every_backend(tmp_path):
    model = small_model(attention_dilation=[1, 2, [1, 3, 1, 2]])
    model.save_pretrained(tmp_path)
    loaded = refimpl.LongformerModel.from_pretrained(tmp_path)
    assert loaded.config.attention_dilation == [1, 2, [1, 3, 1, 2]]
    ids = np.random.default_rng(1).integers(3, SMALL["vocab_size"], size=(2, 37))
    glob = np.zeros_like(ids)
    glob[:, 0] = 1
    expected = loaded(ids, global_attention_mask=glob, output_attentions=True)
    for name in RUNNABLE:
        out = loaded.to_backend(name)(ids, global_attention_mask=glob, output_attentions=True)
        assert_close(get_backend(name).asnumpy(out.last_hidden_state), expected.last_hidden_state,
                     atol=BACKEND_ATOL, rtol=0, what=f"{name}: last_hidden_state")


@pytest.mark.parametrize("value, message", [
    (0, "attention_dilation must be >= 1"), (1.5, "must be an integer"), ("2", "must be an integer"),
    ([1, 2], "has 2 entries but the model has 3 layers"), ([1, 1, [1, 2]], "num_attention_heads = 4 entries"),
    ([1, 1, [1, 0, 1, 1]], "must be >= 1"), (True, "must be an integer"),
])
def test_bad_dilations_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        refimpl.LongformerConfig(**{**SMALL, "attention_dilation": value})


def test_bad_autoregressive_values_are_refused():
    for value in ("yes", 1, None):
        with pytest.raises(ValueError, match="autoregressive must be true or false"):
            refimpl.LongformerConfig(**{**SMALL, "autoregressive": value})


def test_allenai_configs_count_one_side_of_the_window():
    cfg = refimpl.LongformerConfig.from_dict({**SMALL, "attention_window": [2, 4, 4], "attention_mode": "longformer",
                                              "attention_dilation": [1, 1, 2], "autoregressive": False})
    assert cfg.attention_window == [4, 8, 8] and cfg.attention_dilation == [1, 1, 2]
    assert "attention_mode" not in cfg.to_dict()  # written back in transformers' form, so it is not doubled again
