"""LongformerConfig: transformers' `LongformerConfig`, with every field that changes what inference computes.

`LongformerConfig(**fields)` takes transformers' field names and defaults; `from_pretrained(folder_or_hub_name,
**overrides)` reads the `config.json` transformers writes (`model_type: longformer`). Keys of config.json that this
project does not use (transformers_version, gradient_checkpointing, ...) are kept and written back untouched, so a
round trip loses nothing. Every field is checked for type and range when the config is made, naming the field.

Deliberately different from transformers: a keyword that is no field of the config is a TypeError here (transformers
stores it silently, so a misspelt `attention_windw=8` would be ignored); a config.json may still carry any key.

The paper's other sliding windows (section 3.1, Figure 2) are fields too: `attention_dilation` and `autoregressive`,
defaults 1 and false, so every existing checkpoint computes what transformers computes. allenai/longformer's own
config names (`attention_dilation`, `autoregressive`, `attention_mode`) are read as well; note that its
`attention_window` counts ONE side of the window, where transformers' (and this) counts both: a config.json with
`attention_mode` (allenai's) has its windows doubled when read, and is written back in transformers' form.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import os
from dataclasses import dataclass, field

from refimpl.io import hub
from refimpl.io.jsonfile import read_json
from refimpl.ops import SUPPORTED_ACTIVATIONS

PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")

# keys of transformers' PretrainedConfig that mean nothing for inference here; accepted as keywords, carried in
# `extra`, written back
CARRIED_KEYS = ("transformers_version", "dtype", "torch_dtype", "is_encoder_decoder", "tie_word_embeddings",
                "onnx_export", "gradient_checkpointing", "_name_or_path", "use_cache", "position_embedding_type",
                "classifier_dropout", "name_or_path")


@dataclass(init=False)
class LongformerConfig:
    vocab_size: int = 30522  # 50265 for longformer-base-4096 (RoBERTa's byte-level BPE)
    hidden_size: int = 768  # C; split into num_attention_heads heads of size D = C / H
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072  # width of the feed-forward block, usually 4C
    hidden_act: str = "gelu"  # the exact erf GELU; see refimpl.ops.SUPPORTED_ACTIVATIONS
    max_position_embeddings: int = 512  # rows of the position table; 4098 = 4096 tokens + RoBERTa's offset of 2
    type_vocab_size: int = 2  # token-type rows; RoBERTa-style checkpoints have 1
    layer_norm_eps: float = 1e-12  # 1e-5 for RoBERTa/Longformer checkpoints
    # The full window (both sides): one int for every layer or one per layer, each even and positive.
    # A token attends to attention_window // 2 tokens on each side. 512 in longformer-base-4096.
    attention_window: int | list[int] = 512
    # The paper's dilated window: the gap d between the keys a query sees (band slot t is key i + d (t - W)).
    # One int, one per layer, or one list per layer with one value per head. 1 everywhere in every released model.
    attention_dilation: int | list = 1
    autoregressive: bool = False  # the paper's causal window for language modelling: only keys j <= i
    pad_token_id: int = 1  # also the RoBERTa position offset: positions start at pad_token_id + 1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2
    sep_token_id: int = 2  # `</s>`: the QA and multiple-choice heads find the question end by it
    hidden_dropout_prob: float = 0.1  # training only; kept so configs round-trip
    attention_probs_dropout_prob: float = 0.1  # training only
    # tokens the feed-forward block takes at a time (transformers' name); 0: the whole sequence, or what the backend
    # prefers (Backend.feed_forward_rows). Each token's result is the same either way (up to BLAS's last bits).
    chunk_size_feed_forward: int = 0
    initializer_range: float = 0.02  # std of the normal init of new weights (LongformerModel(config))
    id2label: dict = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})  # num_labels follows it
    problem_type: str | None = None  # one of PROBLEM_TYPES; None: the head guesses from the labels' dtype
    output_attentions: bool = False  # the forward's defaults, as transformers' config holds them
    output_hidden_states: bool = False
    return_dict: bool = True  # False: the forward returns a tuple
    architectures: list | None = None  # the model class that saved it; written by save_pretrained
    extra: dict = field(default_factory=dict, repr=False)  # keys of config.json we carry but do not use

    model_type = "longformer"

    def __init__(self, **kwargs):
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = [k for k in kwargs if k not in fields and k not in ("num_labels", "label2id") + CARRIED_KEYS]
        if unknown:
            raise TypeError(f"LongformerConfig got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                            f"its fields are {', '.join(f for f in fields if f != 'extra')}")
        for name, f in fields.items():
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            setattr(self, name, kwargs.get(name, default))
        self.extra = dict(self.extra or {})
        self.extra.update({k: kwargs[k] for k in CARRIED_KEYS if k in kwargs})
        labels = kwargs.get("num_labels")
        if "id2label" not in kwargs and labels is not None:
            self.num_labels = labels
        self.validate()

    # --- derived values ----------------------------------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value) -> None:
        value = _integer(value, "num_labels", low=1)
        if value != len(self.id2label):  # as transformers: new generic names, or keep the existing ones
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}

    @property
    def label2id(self) -> dict[str, int]:
        return {v: k for k, v in self.id2label.items()}

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def use_return_dict(self) -> bool:
        return self.return_dict

    def window(self, layer: int) -> int:
        """The full attention window of `layer`."""
        w = self.attention_window
        return w if isinstance(w, int) else w[layer]

    def dilation(self, layer: int) -> tuple[int, ...]:
        """The dilation of each head of `layer`, H ints."""
        d = self.attention_dilation
        d = d if isinstance(d, int) else d[layer]
        return (d,) * self.num_attention_heads if isinstance(d, int) else tuple(d)

    @property
    def max_tokens(self) -> int:
        """Longest sequence the position table holds: positions run from pad_token_id + 1 upwards."""
        return self.max_position_embeddings - self.pad_token_id - 1

    # --- checks ------------------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Every field's type and range; a ValueError names the field, the value and what is allowed."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            setattr(self, name, _integer(getattr(self, name), name, low=1))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"config.hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})")
        self.attention_window = self._per_layer(self.attention_window, "attention_window", _window)
        self.attention_dilation = self._per_layer(self.attention_dilation, "attention_dilation", self._dilation)
        if not isinstance(self.autoregressive, bool):
            raise ValueError(f"config.autoregressive must be true or false, got {self.autoregressive!r}")
        if not isinstance(self.hidden_act, str) or self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(f"config.hidden_act {self.hidden_act!r} is not supported; use one of "
                             f"{', '.join(SUPPORTED_ACTIVATIONS)}")
        self.pad_token_id = _integer(self.pad_token_id, "pad_token_id", low=0, high=self.vocab_size)
        self.sep_token_id = _integer(self.sep_token_id, "sep_token_id", low=0, high=self.vocab_size)
        for name in ("bos_token_id", "eos_token_id"):  # unused by the model; None allowed, as transformers
            if getattr(self, name) is not None and not isinstance(getattr(self, name), list):
                setattr(self, name, _integer(getattr(self, name), name, low=0, high=self.vocab_size))
        if self.max_tokens < 1:
            raise ValueError(
                f"config.max_position_embeddings ({self.max_position_embeddings}) leaves no position after the "
                f"offset pad_token_id + 1 = {self.pad_token_id + 1}")
        self.chunk_size_feed_forward = _integer(self.chunk_size_feed_forward, "chunk_size_feed_forward", low=0)
        self.layer_norm_eps = _real(self.layer_norm_eps, "layer_norm_eps", positive=True)
        self.initializer_range = _real(self.initializer_range, "initializer_range")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = _real(getattr(self, name), name)
            if value > 1:
                raise ValueError(f"config.{name} must lie in [0, 1], got {value!r}")
            setattr(self, name, value)
        self.id2label = _labels(self.id2label)
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"config.problem_type {self.problem_type!r} is not one of "
                             f"{', '.join(map(repr, PROBLEM_TYPES))}")
        for name in ("output_attentions", "output_hidden_states", "return_dict"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"config.{name} must be true or false, got {getattr(self, name)!r}")
        if self.architectures is not None and not (
                isinstance(self.architectures, list) and all(isinstance(a, str) for a in self.architectures)):
            raise ValueError(f"config.architectures must be a list of class names, got {self.architectures!r}")

    def _per_layer(self, value, name, check):
        """An int for every layer, or a list with one entry per layer, each entry checked by `check`."""
        if isinstance(value, (list, tuple)):
            if len(value) != self.num_hidden_layers:
                raise ValueError(f"config.{name} has {len(value)} entries but the model has "
                                 f"{self.num_hidden_layers} layers; give one per layer or a single int")
            return [check(v, name) for v in value]
        return check(value, name)

    def _dilation(self, value, name):
        """One dilation (an int >= 1), or one per head."""
        if isinstance(value, (list, tuple)):
            if len(value) != self.num_attention_heads:
                raise ValueError(f"config.{name}: a per-head list must have num_attention_heads = "
                                 f"{self.num_attention_heads} entries, got {len(value)}: {list(value)!r}")
            return [_integer(v, name, low=1) for v in value]
        return _integer(value, name, low=1)

    # --- config.json -------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "LongformerConfig":
        """A config from config.json's object: unknown keys are carried; `overrides` must be fields."""
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a JSON object (dict), got {type(d).__name__}")
        d = _allenai_names(dict(d))
        d.pop("model_type", None)
        names = {f.name for f in dataclasses.fields(cls)} | {"num_labels", "label2id"} | set(CARRIED_KEYS)
        kwargs = {k: d.pop(k) for k in list(d) if k in names}
        if "id2label" in kwargs:
            kwargs.pop("num_labels", None)  # id2label decides; transformers writes both
        kwargs.pop("label2id", None)  # follows id2label
        extra = {**dict(kwargs.pop("extra", None) or {}), **d}
        if overrides:
            unknown = [k for k in overrides if k not in names]
            if unknown:
                raise TypeError(f"unexpected config keyword argument(s) {', '.join(map(repr, unknown))}; "
                                f"the fields of LongformerConfig are "
                                f"{', '.join(f.name for f in dataclasses.fields(cls) if f.name != 'extra')}")
            if "num_labels" in overrides and "id2label" not in overrides:
                kwargs.pop("id2label", None)
            kwargs.update(overrides)
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "LongformerConfig":
        d = read_json(path, missing_ok=False)
        model_type = d.get("model_type", "longformer")
        if model_type != "longformer":
            raise ValueError(
                f"{path} describes a {model_type!r} model, not a Longformer; convert it first with "
                f"`longformer-lab convert SRC DST` (BERT and RoBERTa are supported)")
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "LongformerConfig":
        """The config of a checkpoint folder or Hub repository; keywords other than the Hub's (revision,
        cache_dir, local_files_only, token) override config.json's fields."""
        hub_kwargs, overrides = hub.split_hub_keywords(kwargs)
        folder = hub.resolve(pretrained_model_name_or_path, ["config.json"], what="config", **hub_kwargs)
        config = cls.from_json_file(folder / "config.json")
        return cls.from_dict(config.to_dict(), **overrides) if overrides else config

    def to_dict(self) -> dict:
        d = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name != "extra":
                d[f.name] = getattr(self, f.name)
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        d["label2id"] = self.label2id
        d["model_type"] = self.model_type
        if d["architectures"] is None:
            del d["architectures"]
        return d

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        os.makedirs(save_directory, exist_ok=True)
        with open(os.path.join(save_directory, "config.json"), "w", encoding="utf-8") as f:
            f.write(self.to_json_string())

    def copy(self, **changes) -> "LongformerConfig":
        """A new config with `changes` applied (each a field), checked like any other."""
        return type(self).from_dict(self.to_dict(), **changes)


# ---------------------------------------------------------------------------------------------------------------
# Field checks: one function per kind of value, each naming the field
# ---------------------------------------------------------------------------------------------------------------

def _integer(value, name, low=None, high=None) -> int:
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"config.{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value) if not isinstance(value, float) else int(value)
    except TypeError:
        raise ValueError(f"config.{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if low is not None and value < low or high is not None and value >= high:
        allowed = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"config.{name} must be {allowed}, got {value}")
    return value


def _real(value, name, positive=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"config.{name} must be a finite number >= 0, got {type(value).__name__} {value!r}")
    if positive and value == 0:
        raise ValueError(f"config.{name} must be > 0, got {value!r}")
    return float(value)


def _window(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"config.{name} must be an int or a list of ints (even, positive: both sides of the "
                         f"window, e.g. 512), got {value!r}")
    if value <= 0 or value % 2:
        raise ValueError(f"config.{name} must hold even, positive integers (both sides of the window, e.g. 512), "
                         f"got {value}")
    return value


def _labels(id2label) -> dict[int, str]:
    if not isinstance(id2label, dict) or not id2label:
        raise ValueError(f"config.id2label must be a non-empty object of label index -> name, got {id2label!r}")
    labels = {}
    for k, v in id2label.items():
        try:
            index = int(k)
        except (TypeError, ValueError):
            raise ValueError(f"config.id2label keys must be label indices, got {k!r}") from None
        if not isinstance(v, str):
            raise ValueError(f"config.id2label[{k!r}] must be a label name (a string), got {v!r}")
        labels[index] = v
    if sorted(labels) != list(range(len(labels))):
        raise ValueError(f"config.id2label must number its labels 0 .. {len(labels) - 1}, got {sorted(labels)}")
    return labels


def _allenai_names(d: dict) -> dict:
    """allenai/longformer's config: `attention_mode` marks it; its attention_window counts one side."""
    mode = d.pop("attention_mode", None)
    if mode is not None:
        if mode not in ("longformer", "tvm", "sliding_chunks", "sliding_chunks_no_overlap", "n2"):
            raise ValueError(f"config.attention_mode {mode!r} is not one of allenai/longformer's modes")
        window = d.get("attention_window")
        if window is not None:
            d["attention_window"] = [2 * w for w in window] if isinstance(window, list) else 2 * window
    return d  # written back in transformers' form (both sides, no attention_mode)
