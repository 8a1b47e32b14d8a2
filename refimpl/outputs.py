"""What the model and the heads return, under transformers' class names.

Legend: B batch, N sequence length, C hidden size, H heads, W one-sided window, G global tokens, V vocabulary,
L labels, K choices.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LongformerBaseModelOutputWithPooling:
    last_hidden_state: object  # (B, N, C)
    pooler_output: object = None  # (B, C)
    hidden_states: tuple | None = None  # num_hidden_layers + 1 arrays (B, N, C): embeddings, then each layer
    attentions: tuple | None = None  # per layer (B, H, N, G + 2W + 1): global columns, then the band
    global_attentions: tuple | None = None  # per layer (B, H, N, G); None when no row has a global token


@dataclass
class LongformerHeadOutput:
    """What a head returns besides its logits; the encoder's outputs as in LongformerBaseModelOutputWithPooling."""

    loss: object = None  # a float32 scalar when labels are given
    logits: object = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    global_attentions: tuple | None = None


class LongformerMaskedLMOutput(LongformerHeadOutput):
    """logits (B, N, V)"""


class LongformerSequenceClassifierOutput(LongformerHeadOutput):
    """logits (B, L)"""


class LongformerTokenClassifierOutput(LongformerHeadOutput):
    """logits (B, N, L)"""


class LongformerMultipleChoiceModelOutput(LongformerHeadOutput):
    """logits (B, K); hidden_states and attentions of the flattened (B*K, N) batch, as transformers"""


@dataclass
class LongformerQuestionAnsweringModelOutput:
    loss: object = None
    start_logits: object = None  # (B, N)
    end_logits: object = None  # (B, N)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    global_attentions: tuple | None = None
