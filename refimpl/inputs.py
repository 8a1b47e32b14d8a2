"""The model's inputs: checked at the boundary, then merged into one token kind per position.

Every array a user passes goes through here before anything is computed, so that bad input is a ValueError that
says what was wrong and what is allowed, and the attention code can trust what it is given.

Legend: B batch, N sequence length, C hidden size.
"""

from __future__ import annotations

import numpy as np

from refimpl.attention import GLOBAL, LOCAL, PADDING

__all__ = ["int_array", "float_array", "check_range", "token_kind", "prepare_inputs"]


def int_array(x, name: str, shape=None, allow_bool: bool = False) -> np.ndarray:
    """x as an int64 array, or a ValueError that says what it was and what is allowed. Masks may be bool (as
    transformers' accept); ids may not (transformers refuses a bool tensor of ids too)."""
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array of integers (ragged rows? pad them)") from None
    if a.dtype == np.bool_ and not allow_bool:
        raise ValueError(f"{name} must hold integers, got dtype bool")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape} but input_ids has shape {shape}; they must match")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:  # would wrap to a negative int64
        raise ValueError(f"{name} holds {int(a.max())}, larger than any index")
    return a.astype(np.int64)


def check_range(a: np.ndarray, name: str, low: int, high: int, what: str) -> None:
    if a.size and (a.min() < low or a.max() >= high):
        bad = a[(a < low) | (a >= high)][0]
        raise ValueError(f"{name} holds {bad}, outside [{low}, {high}) ({what})")


def token_kind(attention_mask: np.ndarray, global_attention_mask: np.ndarray | None) -> np.ndarray:
    """transformers' merged mask, (B, N) int64: PADDING 0, LOCAL 1, GLOBAL 2.

    transformers computes attention_mask * (global_attention_mask + 1), which for attention_mask 2 (its own merged
    value for "global") together with global_attention_mask 1 gives 4, a kind that its attention treats as neither.
    Here a token that either mask flags global is global, and a token that attention_mask marks as padding stays
    padding; for every other combination the two agree.
    """
    is_global = attention_mask == 2
    if global_attention_mask is not None:
        is_global = is_global | (global_attention_mask == 1)
    return np.where(attention_mask == 0, PADDING, np.where(is_global, GLOBAL, LOCAL)).astype(np.int64)


def float_array(x, name: str, shape=None) -> np.ndarray:
    """x as a finite float32 array, or a ValueError naming it."""
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().float().cpu().numpy()
    try:
        a = np.asarray(x)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array of numbers (ragged rows?)") from None
    if a.dtype == object or a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number) \
            or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def prepare_inputs(config, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                   position_ids=None, inputs_embeds=None):
    """Validate the inputs. Returns NumPy (input_ids or None, inputs_embeds or None, kind, token_type_ids,
    position_ids): the ids and masks (B, N) int64, inputs_embeds (B, N, C) float32. Exactly one of input_ids and
    inputs_embeds must be given."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of input_ids and inputs_embeds"
                         f" (got {'both' if input_ids is not None else 'neither'})")
    if input_ids is not None:
        ids = int_array(input_ids, "input_ids")
        if ids.ndim != 2 or ids.shape[0] < 1 or ids.shape[1] < 1:
            raise ValueError(f"input_ids must have shape (batch, sequence) with both >= 1, got {ids.shape}")
        check_range(ids, "input_ids", 0, config.vocab_size,
                    f"token ids must lie in the vocabulary of {config.vocab_size}")
        shape, embeds = ids.shape, None
    else:
        ids, embeds = None, float_array(inputs_embeds, "inputs_embeds")
        if embeds.ndim != 3 or embeds.shape[0] < 1 or embeds.shape[1] < 1 or embeds.shape[2] != config.hidden_size:
            raise ValueError(f"inputs_embeds must have shape (batch, sequence, hidden_size={config.hidden_size}) "
                             f"with batch and sequence >= 1, got {embeds.shape}")
        shape = embeds.shape[:2]
    mask = np.ones(shape, np.int64) if attention_mask is None else int_array(attention_mask, "attention_mask", shape, allow_bool=True)
    check_range(mask, "attention_mask", 0, 3, "0 padding, 1 attend, 2 global")
    glob = None
    if global_attention_mask is not None:
        glob = int_array(global_attention_mask, "global_attention_mask", shape, allow_bool=True)
        check_range(glob, "global_attention_mask", 0, 2, "0 local, 1 global")
    kind = token_kind(mask, glob)
    if token_type_ids is None:
        token_type_ids = np.zeros(shape, np.int64)
    token_type_ids = int_array(token_type_ids, "token_type_ids", shape)
    check_range(token_type_ids, "token_type_ids", 0, config.type_vocab_size,
                f"the model has {config.type_vocab_size} token type(s)")
    if position_ids is None:
        if ids is not None:
            # RoBERTa: non-pad tokens count up from pad_token_id + 1, pad tokens sit at pad_token_id
            not_pad = (ids != config.pad_token_id).astype(np.int64)
        else:  # transformers: embeddings carry no padding id, so every position counts
            not_pad = np.ones(shape, np.int64)
        position_ids = np.cumsum(not_pad, axis=1) * not_pad + config.pad_token_id
        if position_ids.max() >= config.max_position_embeddings:
            raise ValueError(
                f"the input has {int(not_pad.sum(axis=1).max())} tokens but the position table holds at most "
                f"{config.max_tokens} (max_position_embeddings {config.max_position_embeddings} - pad_token_id "
                f"{config.pad_token_id} - 1); truncate it")
    position_ids = int_array(position_ids, "position_ids", shape)
    check_range(position_ids, "position_ids", 0, config.max_position_embeddings,
                f"the position table has {config.max_position_embeddings} rows")
    return ids, embeds, kind, token_type_ids, position_ids
