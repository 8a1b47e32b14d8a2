"""Property tests over the whole model (hypothesis): random valid inputs give transformers' numbers on every
backend; random invalid inputs give a result or a ValueError / TypeError, nothing else (no IndexError, no NaN,
no hang). Bounded to about a minute.

Would catch: a padding or global pattern the parity tables never tried (a row with every token global, globals
only in the padding, one token), an input check that lets a bad value reach an index operation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import HIDDEN_ATOL, HIDDEN_RTOL, PROBS_ATOL, SMALL, assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refimpl
from refimpl.backends import available_backends

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

RUNNABLE = [name for name, why in available_backends().items() if why is None]
WINDOWS = [[4, 4, 4], [4, 8, 8], [16, 8, 4], [16, 16, 16]]  # transformers pads to the largest: each divides it


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """One transformers model per window list, and ours loaded from what it saved."""
    made = {}
    for windows in WINDOWS:
        torch.manual_seed(0)
        theirs = transformers.LongformerModel(transformers.LongformerConfig(**{**SMALL, "attention_window": windows}))
        directory = tmp_path_factory.mktemp("props")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.eval().save_pretrained(directory)
        made[tuple(windows)] = (theirs, {name: refimpl.LongformerModel.from_pretrained(directory, backend=name)
                                         for name in RUNNABLE})
    return made


@st.composite
def valid_inputs(draw):
    B = draw(st.integers(1, 3))
    N = draw(st.integers(1, 48))
    windows = draw(st.sampled_from(WINDOWS))
    ids = np.array(draw(st.lists(st.lists(st.integers(3, 96), min_size=N, max_size=N), min_size=B, max_size=B)))
    mask = np.ones((B, N), np.int64)
    glob = np.zeros((B, N), np.int64)
    for b in range(B):
        keep = draw(st.integers(1, N))
        mask[b, keep:] = 0
        ids[b, keep:] = SMALL["pad_token_id"]
        for i in draw(st.lists(st.integers(0, N - 1), max_size=4, unique=True)):
            glob[b, i] = 1  # also on padding: padding wins, as in transformers
    types = np.array(draw(st.lists(st.lists(st.integers(0, 1), min_size=N, max_size=N), min_size=B, max_size=B)))
    return tuple(windows), ids, mask, glob, types


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(valid_inputs())
def test_random_valid_inputs_equal_transformers_on_every_backend(pair, case):
    windows, ids, mask, glob, types = case
    theirs, ours = pair[windows]
    with torch.no_grad():
        expected = theirs(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(glob),
                          torch.from_numpy(types), output_attentions=True)
    keep = mask.astype(bool)  # transformers' rows of padding are not defined to match; compare real tokens
    for name, model in ours.items():
        out = model(ids, mask, glob, types, output_attentions=True)
        last = refimpl.asnumpy(out.last_hidden_state)
        assert_close(last[keep], expected.last_hidden_state.numpy()[keep], atol=HIDDEN_ATOL, rtol=HIDDEN_RTOL,
                     what=f"{name}: last_hidden_state")
        for layer, (a, e) in enumerate(zip(out.attentions, expected.attentions)):
            a, e = refimpl.asnumpy(a), e.numpy()
            local = (keep & (glob == 0))[:, None, :, None]
            assert_close(a * local, e[..., :a.shape[-1]] * local, atol=PROBS_ATOL, rtol=0,
                         what=f"{name}: attentions[{layer}]")


JUNK = st.one_of(
    st.none(), st.integers(-5, 200), st.floats(allow_nan=True), st.text(max_size=3), st.booleans(),
    st.lists(st.integers(-3, 120), max_size=5),
    st.lists(st.lists(st.integers(-3, 120), min_size=0, max_size=5), max_size=3),
    st.builds(lambda n, d: np.full((1, n), d), st.integers(0, 6), st.sampled_from([0, 1, 2, -1, 97, 2.5, True])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(input_ids=JUNK, attention_mask=JUNK, global_attention_mask=JUNK, token_type_ids=JUNK, position_ids=JUNK)
def test_random_invalid_inputs_give_a_result_or_a_clear_error(pair, input_ids, attention_mask,
                                                              global_attention_mask, token_type_ids, position_ids):
    model = pair[tuple(WINDOWS[1])][1]["numpy"]
    try:
        out = model(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids)
    except (ValueError, TypeError) as e:
        assert str(e)  # says something
    else:
        assert np.isfinite(out.last_hidden_state).all()
