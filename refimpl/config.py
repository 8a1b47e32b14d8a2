"""LongformerConfig: every field of transformers' `LongformerConfig` that changes what inference computes.

Reads and writes the `config.json` that transformers writes (`model_type: longformer`); keys we do not use are kept
and written back untouched, so a round trip loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from refimpl.io.jsonfile import read_json
from refimpl.ops import SUPPORTED_ACTIVATIONS

@dataclass
class LongformerConfig:
    vocab_size: int = 30522  # 50265 for longformer-base-4096 (RoBERTa's byte-level BPE)
    hidden_size: int = 768  # C; split into num_attention_heads heads of size D = C / H
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072  # width of the feed-forward block, usually 4C
    hidden_act: str = "gelu"  # the exact erf GELU; see SUPPORTED_ACTIVATIONS
    max_position_embeddings: int = 512  # rows of the position table; 4098 = 4096 tokens + RoBERTa's offset of 2
    type_vocab_size: int = 2  # token-type rows; RoBERTa-style checkpoints have 1
    layer_norm_eps: float = 1e-12  # 1e-5 for RoBERTa/Longformer checkpoints
    # The full window (both sides): one int for every layer or one per layer, each even and positive.
    # A token attends to attention_window // 2 tokens on each side. 512 in longformer-base-4096.
    attention_window: int | list[int] = 512
    pad_token_id: int = 1  # also the RoBERTa position offset: positions start at pad_token_id + 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    sep_token_id: int = 2  # `</s>`: the QA and multiple-choice heads find the question end by it
    hidden_dropout_prob: float = 0.1  # training only; kept so configs round-trip
    attention_probs_dropout_prob: float = 0.1  # training only
    initializer_range: float = 0.02
    id2label: dict[int, str] = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})
    problem_type: str | None = None  # "regression" | "single_label_classification" | "multi_label_classification"
    extra: dict = field(default_factory=dict, repr=False)  # keys of config.json we carry but do not use

    def __post_init__(self):
        self.id2label = {int(k): v for k, v in self.id2label.items()}
        self.validate()

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict[str, int]:
        return {v: k for k, v in self.id2label.items()}

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def window(self, layer: int) -> int:
        """The full attention window of `layer`."""
        w = self.attention_window
        return w if isinstance(w, int) else w[layer]

    @property
    def max_tokens(self) -> int:
        """Longest sequence the position table holds: positions run from pad_token_id + 1 upwards."""
        return self.max_position_embeddings - self.pad_token_id - 1

    def validate(self) -> None:
        def positive(name):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"config.{name} must be a positive integer, got {v!r}")

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            positive(name)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"config.hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})")
        windows = [self.attention_window] if isinstance(self.attention_window, int) else self.attention_window
        if not isinstance(windows, (list, tuple)) or not windows:
            raise ValueError(f"config.attention_window must be an int or a list of ints, got {self.attention_window!r}")
        if not isinstance(self.attention_window, int):
            self.attention_window = list(windows)
            if len(windows) != self.num_hidden_layers:
                raise ValueError(
                    f"config.attention_window has {len(windows)} entries but the model has "
                    f"{self.num_hidden_layers} layers; give one window per layer or a single int")
        for w in windows:
            if not isinstance(w, int) or isinstance(w, bool) or w <= 0 or w % 2:
                raise ValueError(
                    f"config.attention_window must hold even, positive integers (both sides of the window, "
                    f"e.g. 512), got {w!r}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"config.hidden_act {self.hidden_act!r} is not supported; use one of {', '.join(SUPPORTED_ACTIVATIONS)}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"config.pad_token_id ({self.pad_token_id}) must lie in [0, vocab_size={self.vocab_size})")
        if self.max_tokens < 1:
            raise ValueError(
                f"config.max_position_embeddings ({self.max_position_embeddings}) leaves no position after the "
                f"offset pad_token_id + 1 = {self.pad_token_id + 1}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"config.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if self.problem_type not in (None, "regression", "single_label_classification", "multi_label_classification"):
            raise ValueError(
                f"config.problem_type {self.problem_type!r} is not one of None, 'regression', "
                "'single_label_classification', 'multi_label_classification'")

    # --- config.json ---------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict) -> "LongformerConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        if "id2label" not in d and "num_labels" in d:
            d["id2label"] = {i: f"LABEL_{i}" for i in range(int(d["num_labels"]))}
        d.pop("num_labels", None)
        d.pop("label2id", None)
        kwargs = {k: d.pop(k) for k in list(d) if k in known}
        return cls(**kwargs, extra=d)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "LongformerConfig":
        d = read_json(path, missing_ok=False)
        model_type = d.get("model_type", "longformer")
        if model_type != "longformer":
            raise ValueError(
                f"{path} describes a {model_type!r} model, not a Longformer; convert it first with "
                f"`longformer-lab convert SRC DST` (BERT and RoBERTa are supported)")
        return cls.from_dict(d)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "LongformerConfig":
        return cls.from_json_file(os.path.join(directory, "config.json"))

    def to_dict(self) -> dict:
        d = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name != "extra":
                d[f.name] = getattr(self, f.name)
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        d["label2id"] = self.label2id
        d["model_type"] = "longformer"
        return d

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
