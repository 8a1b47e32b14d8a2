"""What the model and the heads return, under transformers' class names and with transformers' `ModelOutput` manners.

An output is a dataclass whose fields are also reachable as a mapping and a tuple, as transformers' are:
`out.logits`, `out["logits"]`, `out[0]`, `out.keys()`, `out.to_tuple()`, with the fields that are None skipped in
the mapping and the tuple (so `out[0]` is the loss when there is one, else the logits). `return_dict=False` gives
`to_tuple()` directly.

Legend: B batch, N sequence length, C hidden size, H heads, W one-sided window, G global tokens, V vocabulary,
L labels, K choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


class ModelOutput:
    """Mapping and tuple access over a dataclass's fields that are not None (transformers' ModelOutput)."""

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple[str, object]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self) -> tuple:
        return tuple(self.values())

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]  # an int or a slice, over the fields that are set

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def get(self, key, default=None):
        return getattr(self, key) if key in self.keys() else default


@dataclass
class LongformerBaseModelOutput(ModelOutput):
    last_hidden_state: object = None  # (B, N, C)
    hidden_states: tuple | None = None  # num_hidden_layers + 1 arrays (B, N, C): embeddings, then each layer
    attentions: tuple | None = None  # per layer (B, H, N, G + 2W + 1): global columns, then the band
    global_attentions: tuple | None = None  # per layer (B, H, N, G); None when no row has a global token


@dataclass
class LongformerBaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: object = None  # (B, N, C)
    pooler_output: object = None  # (B, C)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    global_attentions: tuple | None = None


@dataclass
class LongformerMaskedLMOutput(ModelOutput):
    loss: object = None  # a float32 scalar when labels are given
    logits: object = None  # (B, N, V)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    global_attentions: tuple | None = None


@dataclass
class LongformerSequenceClassifierOutput(ModelOutput):
    loss: object = None
    logits: object = None  # (B, L)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    global_attentions: tuple | None = None


@dataclass
class LongformerTokenClassifierOutput(ModelOutput):
    loss: object = None
    logits: object = None  # (B, N, L)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    global_attentions: tuple | None = None


@dataclass
class LongformerMultipleChoiceModelOutput(ModelOutput):
    loss: object = None
    logits: object = None  # (B, K); hidden_states and attentions are of the flattened (B*K, N) batch
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    global_attentions: tuple | None = None


@dataclass
class LongformerQuestionAnsweringModelOutput(ModelOutput):
    loss: object = None
    start_logits: object = None  # (B, N)
    end_logits: object = None  # (B, N)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    global_attentions: tuple | None = None
