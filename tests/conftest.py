"""Shared test helpers: the tolerances, and checkpoints that transformers itself saved from random models.

Every tolerance of the suite is stated once, here, and imported by the tests that use it (float32 throughout):
  - against transformers:            hidden states and logits 2e-5 absolute + 1e-4 relative, probabilities 2e-6
  - a backend against the reference:  hidden states, context, logits, losses 1e-5 absolute, probabilities 1e-6
                                       absolute + 1e-5 relative (a score's last-bit error moves its probability
                                       by that fraction: 1.1e-6 on a probability of 0.63, with NumPy's OpenBLAS
                                       on its Haswell kernel)
  - half-precision (tensor-core) attention against the float32 reference: HALF_TOL per type
  - the converter against the source model (BERT, RoBERTa): SOURCE_ATOL
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

HIDDEN_ATOL, HIDDEN_RTOL = 2e-5, 1e-4  # against transformers
PROBS_ATOL = 2e-6
BACKEND_ATOL = 1e-5  # a backend (numba, cupy float32, dense) against the NumPy reference, or the float64 oracle
BACKEND_PROBS_ATOL, BACKEND_PROBS_RTOL = 1e-6, 1e-5
HALF_TOL = {"float16": dict(atol=3e-3, rtol=1e-2), "bfloat16": dict(atol=2e-2, rtol=5e-2)}
SOURCE_ATOL = 1e-4  # a converted checkpoint against the BERT/RoBERTa model it came from

# A small Longformer: 3 layers with per-layer windows, 4 heads of size 8, room for 120 tokens.
SMALL = dict(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=124, attention_window=[4, 8, 8], pad_token_id=1, bos_token_id=0,
             eos_token_id=2, sep_token_id=2, layer_norm_eps=1e-5, type_vocab_size=2)


def save_transformers_checkpoint(directory, class_name="LongformerModel", seed=0, **overrides):
    """Save a randomly initialised transformers Longformer (class `class_name`) to `directory`; return the model."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.LongformerConfig(**{**SMALL, **overrides})
    model = getattr(transformers, class_name)(config).eval()
    with torch.no_grad():  # transformers starts biases at 0 and LayerNorm weights at 1, which would hide a dropped one
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0, 0.1)
            elif "LayerNorm.weight" in name:
                parameter.normal_(1, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(directory)
    return model


@pytest.fixture(scope="session")
def checkpoint_factory(tmp_path_factory):
    """checkpoint_factory(class_name, **config) -> (directory, transformers model), cached per arguments."""
    cache = {}

    def make(class_name="LongformerModel", seed=0, **overrides):
        key = (class_name, seed, tuple(sorted((k, str(v)) for k, v in overrides.items())))
        if key not in cache:
            directory = tmp_path_factory.mktemp(class_name)
            cache[key] = (directory, save_transformers_checkpoint(directory, class_name, seed, **overrides))
        return cache[key]

    return make


def assert_close(actual, expected, atol=HIDDEN_ATOL, rtol=HIDDEN_RTOL, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.isfinite(actual).all(), f"{what}: non-finite values"
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol, err_msg=what)


def random_inputs(rng, batch, length, vocab_size=97, pad_token_id=1, pad_rows=(), n_global=()):
    """ids, attention_mask, global_attention_mask with ragged padding (pad_rows: row -> padded length)
    and ragged global tokens (n_global: row -> number of global tokens)."""
    ids = rng.integers(3, vocab_size, size=(batch, length))
    mask = np.ones((batch, length), np.int64)
    for row, keep in dict(pad_rows).items():
        ids[row, keep:] = pad_token_id
        mask[row, keep:] = 0
    glob = np.zeros((batch, length), np.int64)
    for row, count in dict(n_global).items():
        valid = np.flatnonzero(mask[row])
        glob[row, rng.choice(valid, size=count, replace=False)] = 1
    return ids, mask, glob


def qa_ids(rng, batch, question, context, vocab=97):
    """<s> question </s></s> context </s>: exactly three separators (id 2), as the QA head's default expects."""
    rows = [[0, *rng.integers(3, vocab, question), 2, 2, *rng.integers(3, vocab, context), 2] for _ in range(batch)]
    return np.array(rows)
