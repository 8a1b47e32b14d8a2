"""The Longformer model and its task heads, written once against a backend's array module.

Follows Beltagy, Peters & Cohan 2020 (arXiv 2004.05150) and equals transformers' `modeling_longformer.py`:
RoBERTa's embeddings and post-LayerNorm layers, with the self-attention of `refimpl/attention.py`.
Inference only: dropout is the identity.

Legend: B batch, N sequence length, C hidden size, F intermediate size, V vocabulary, L labels, K choices.

Deliberately different from transformers:
  - Inputs are not padded to a multiple of the window (the attention needs no such padding), so nothing is un-padded.
  - `global_attentions` has N rows, like every other output (transformers leaves it padded), and the slots past
    a row's own count of global tokens are 0 (transformers leaves a uniform filler row there).
  - A checkpoint without pooler weights gives a model without a pooler (pooler_output None), never random weights.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from refimpl import checkpoint
from refimpl.attention import GLOBAL, LOCAL, PADDING, LongformerSelfAttention, global_slots
from refimpl.backends import get_backend
from refimpl.config import LongformerConfig


# ---------------------------------------------------------------------------------------------------------------
# Elementwise pieces (xp-generic: NumPy or CuPy arrays)
# ---------------------------------------------------------------------------------------------------------------

# erf(x) as a rational function of x, exact to about 1e-7 (one float32 ulp near 1) on [-4, 4] and clamped outside,
# where erf is +-1 in float32 (Eigen's and XLA's float32 erf use the same approximation). NumPy has no erf.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


def erf(x):
    x = x.clip(-4.0, 4.0)
    x2 = x * x
    p = np.float32(_ERF_P[0])
    for c in _ERF_P[1:]:
        p = p * x2 + np.float32(c)
    q = np.float32(_ERF_Q[0])
    for c in _ERF_Q[1:]:
        q = q * x2 + np.float32(c)
    return x * p / q


def gelu(x):
    """The exact GELU of BERT and RoBERTa, x * Phi(x)."""
    return x * np.float32(0.5) * (np.float32(1.0) + erf(x * np.float32(1 / math.sqrt(2))))


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (..., 1), biased as torch's
    return (x - mean) / (var + np.float32(eps)) ** np.float32(0.5) * weight + bias


def activation(name: str, backend):
    xp = backend.xp
    return {
        "gelu": backend.gelu,
        "relu": lambda x: xp.maximum(x, np.float32(0)),
        "gelu_new": lambda x: np.float32(0.5) * x * (1 + xp.tanh(np.float32(math.sqrt(2 / math.pi))
                                                               * (x + np.float32(0.044715) * x ** 3))),
        "gelu_pytorch_tanh": lambda x: np.float32(0.5) * x * (1 + xp.tanh(np.float32(math.sqrt(2 / math.pi))
                                                                        * (x + np.float32(0.044715) * x ** 3))),
        "silu": lambda x: x / (1 + xp.exp(-x)),
        "swish": lambda x: x / (1 + xp.exp(-x)),
        "tanh": xp.tanh,
    }[name]


class Linear:
    """y = x W^T + b with W in PyTorch's (out, in) layout, as the checkpoint stores it."""

    def __init__(self, params: dict, name: str):
        self.weight, self.bias = params[f"{name}.weight"], params[f"{name}.bias"]

    def __call__(self, x):
        y = x @ self.weight.T
        y += self.bias  # in place: one array per product, not two
        return y


class LayerNorm:
    def __init__(self, params: dict, name: str, eps: float, backend):
        self.weight, self.bias, self.eps, self.backend = params[f"{name}.weight"], params[f"{name}.bias"], eps, backend

    def __call__(self, x, residual=None):
        """LayerNorm(x), or LayerNorm(x + residual) (a backend may fuse the sum into the norm)."""
        if residual is None:
            return self.backend.layer_norm(x, self.weight, self.bias, self.eps)
        return self.backend.residual_layer_norm(x, residual, self.weight, self.bias, self.eps)


def sub(params: dict, prefix: str) -> dict:
    """The entries of `params` under `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


# ---------------------------------------------------------------------------------------------------------------
# Embeddings, layer, model
# ---------------------------------------------------------------------------------------------------------------

class LongformerEmbeddings:
    """word + position + token type, then LayerNorm. Positions are RoBERTa's: counted from pad_token_id + 1."""

    def __init__(self, params: dict, config: LongformerConfig, backend):
        self.word = params["word_embeddings.weight"]  # (V, C)
        self.position = params["position_embeddings.weight"]  # (max_position_embeddings, C)
        self.token_type = params["token_type_embeddings.weight"]  # (type_vocab_size, C)
        self.norm = LayerNorm(params, "LayerNorm", config.layer_norm_eps, backend)

    def __call__(self, input_ids, position_ids, token_type_ids):
        x = self.word[input_ids] + self.position[position_ids] + self.token_type[token_type_ids]  # (B, N, C)
        return self.norm(x)


class LongformerLayer:
    """Self-attention, then the feed-forward block, each followed by residual + LayerNorm (post-LN, as BERT)."""

    def __init__(self, params: dict, config: LongformerConfig, layer: int, backend):
        eps = config.layer_norm_eps
        self.attention = LongformerSelfAttention(sub(params, "attention.self."), config, layer, backend)
        self.attention_output = Linear(params, "attention.output.dense")
        self.attention_norm = LayerNorm(params, "attention.output.LayerNorm", eps, backend)
        self.intermediate = Linear(params, "intermediate.dense")
        self.act = activation(config.hidden_act, backend)
        self.output = Linear(params, "output.dense")
        self.output_norm = LayerNorm(params, "output.LayerNorm", eps, backend)

    def __call__(self, hidden, kind, global_index, n_global, output_attentions):
        context, probs, global_probs = self.attention(hidden, kind, global_index, n_global, output_attentions)
        hidden = self.attention_norm(self.attention_output(context), residual=hidden)  # (B, N, C)
        ff = self.act(self.intermediate(hidden))  # (B, N, F)
        hidden = self.output_norm(self.output(ff), residual=hidden)  # (B, N, C)
        return hidden, probs, global_probs


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


def _int_array(x, name: str, shape=None) -> np.ndarray:
    """x as an int64 array, or a ValueError that says what it was and what is allowed."""
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array of integers (ragged rows? pad them)") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape} but input_ids has shape {shape}; they must match")
    return a.astype(np.int64)


def _check_range(a: np.ndarray, name: str, low: int, high: int, what: str) -> None:
    if a.size and (a.min() < low or a.max() >= high):
        bad = a[(a < low) | (a >= high)][0]
        raise ValueError(f"{name} holds {bad}, outside [{low}, {high}) ({what})")


class LongformerPreTrainedModel:
    """What every model class shares: the encoder, loading, backends. Subclasses add a head."""

    add_pooling_layer = False  # LongformerModel and the multiple-choice head use the pooler

    def __init__(self, config: LongformerConfig, params: dict[str, np.ndarray], backend="numpy"):
        self.config = config
        self.params = params  # NumPy float32, encoder names without prefix, head names as saved
        self.to_backend(backend)

    # --- loading and backends ----------------------------------------------------------------------------------

    @classmethod
    def expected_shapes(cls, config: LongformerConfig) -> tuple[dict, tuple]:
        """(name -> shape for every weight, names that may be absent)."""
        shapes = checkpoint.encoder_shapes(config, pooler=cls.add_pooling_layer)
        shapes.update(cls.head_shapes(config))
        optional = ("pooler.dense.weight", "pooler.dense.bias") if cls is LongformerModel else ()
        return shapes, optional + cls.optional_head_keys

    @classmethod
    def head_shapes(cls, config) -> dict:
        return {}

    optional_head_keys: tuple = ()

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, backend="numpy", **config_overrides):
        """Load a transformers-format Longformer checkpoint folder. `config_overrides` replace config.json
        fields (for example attention_window=256), as in transformers."""
        if not os.path.isdir(directory):
            raise ValueError(f"{os.fspath(directory)!r} is not a directory; pass a checkpoint folder with "
                             "config.json and model.safetensors")
        config = LongformerConfig.from_pretrained(directory)
        if config_overrides:
            config = LongformerConfig.from_dict({**config.to_dict(), **config_overrides})
        shapes, optional = cls.expected_shapes(config)
        params, _ = checkpoint.match_keys(checkpoint.read_tensors(directory), shapes, optional)
        return cls(config, cls.tie_weights(params), backend)

    @classmethod
    def tie_weights(cls, params: dict) -> dict:
        return params

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write config.json and model.safetensors that transformers' from_pretrained also loads."""
        self.config.save_pretrained(directory)
        prefix = "" if isinstance(self, LongformerModel) else "longformer."
        shapes = checkpoint.encoder_shapes(self.config, pooler=True)
        saved = {(prefix + k if k in shapes else k): v for k, v in self.params.items()}
        checkpoint.save_safetensors(saved, directory)

    def to_backend(self, backend):
        """Move the weights to another backend ("numpy", "numba", "cupy") and rebuild the layers. Returns self."""
        self.backend = get_backend(backend)
        dev = {k: self.backend.asarray(v) for k, v in self.params.items()}  # weights uploaded once
        self.weights = dev
        self.embeddings = LongformerEmbeddings(sub(dev, "embeddings."), self.config, self.backend)
        self.layers = [LongformerLayer(sub(dev, f"encoder.layer.{i}."), self.config, i, self.backend)
                       for i in range(self.config.num_hidden_layers)]
        self.pooler = Linear(dev, "pooler.dense") if "pooler.dense.weight" in dev else None
        return self

    def set_attention_window(self, attention_window) -> None:
        """Change the window (an even int, or one per layer) and rebuild; the weights do not depend on it."""
        self.config = LongformerConfig.from_dict({**self.config.to_dict(), "attention_window": attention_window})
        self.to_backend(self.backend)

    # --- the encoder -------------------------------------------------------------------------------------------

    def prepare_inputs(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                       position_ids=None):
        """Validate the inputs; return NumPy (input_ids, kind, token_type_ids, position_ids), all (B, N) int64.

        kind is transformers' merged mask: 0 padding, 1 local, 2 global (attention_mask * (global_attention_mask + 1)).
        """
        cfg = self.config
        ids = _int_array(input_ids, "input_ids")
        if ids.ndim != 2 or ids.shape[0] < 1 or ids.shape[1] < 1:
            raise ValueError(f"input_ids must have shape (batch, sequence) with both >= 1, got {ids.shape}")
        _check_range(ids, "input_ids", 0, cfg.vocab_size, f"token ids must lie in the vocabulary of {cfg.vocab_size}")
        shape = ids.shape
        mask = np.ones(shape, np.int64) if attention_mask is None else _int_array(attention_mask, "attention_mask", shape)
        _check_range(mask, "attention_mask", 0, 3, "0 padding, 1 attend, 2 global")
        kind = mask
        if global_attention_mask is not None:
            glob = _int_array(global_attention_mask, "global_attention_mask", shape)
            _check_range(glob, "global_attention_mask", 0, 2, "0 local, 1 global")
            kind = mask * (glob + 1)
        if token_type_ids is None:
            token_type_ids = np.zeros(shape, np.int64)
        token_type_ids = _int_array(token_type_ids, "token_type_ids", shape)
        _check_range(token_type_ids, "token_type_ids", 0, cfg.type_vocab_size,
                     f"the model has {cfg.type_vocab_size} token type(s)")
        if position_ids is None:
            # RoBERTa: non-pad tokens count up from pad_token_id + 1, pad tokens sit at pad_token_id
            not_pad = (ids != cfg.pad_token_id).astype(np.int64)
            position_ids = np.cumsum(not_pad, axis=1) * not_pad + cfg.pad_token_id
            if position_ids.max() >= cfg.max_position_embeddings:
                raise ValueError(
                    f"the input has {int(not_pad.sum(axis=1).max())} tokens but the position table holds at most "
                    f"{cfg.max_tokens} (max_position_embeddings {cfg.max_position_embeddings} - pad_token_id "
                    f"{cfg.pad_token_id} - 1); truncate it")
        position_ids = _int_array(position_ids, "position_ids", shape)
        _check_range(position_ids, "position_ids", 0, cfg.max_position_embeddings,
                     f"the position table has {cfg.max_position_embeddings} rows")
        return ids, kind, token_type_ids, position_ids

    def encode(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
               position_ids=None, output_attentions=False, output_hidden_states=False):
        """The Longformer encoder (transformers' LongformerModel.forward)."""
        ids, kind, token_type_ids, position_ids = self.prepare_inputs(
            input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids)
        global_index, n_global = global_slots(kind)  # (B, G), (B,)
        up = self.backend.asarray
        kind_d = up(kind.astype(np.int8))
        global_index_d, n_global_d = up(global_index), up(n_global)

        hidden = self.embeddings(up(ids), up(position_ids), up(token_type_ids))  # (B, N, C)
        all_hidden, all_probs, all_global_probs = [], [], []
        for layer in self.layers:
            all_hidden.append(hidden)
            hidden, probs, global_probs = layer(hidden, kind_d, global_index_d, n_global_d, output_attentions)
            all_probs.append(probs)
            all_global_probs.append(global_probs)
        all_hidden.append(hidden)

        has_global = global_index.shape[1] > 0
        return LongformerBaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_probs) if output_attentions else None,
            global_attentions=tuple(all_global_probs) if output_attentions and has_global else None,
        )

    def pool(self, hidden):
        """The pooler: dense + tanh on the first token. (B, N, C) -> (B, C)."""
        return self.backend.xp.tanh(self.pooler(hidden[:, 0]))

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)


class LongformerModel(LongformerPreTrainedModel):
    """The bare encoder: last_hidden_state, pooler_output and, on request, every layer's states and attentions."""

    add_pooling_layer = True

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, output_attentions=False, output_hidden_states=False):
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states)
        if self.pooler is not None:
            out.pooler_output = self.pool(out.last_hidden_state)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Losses (on the host, in float64, returned as float32 scalars)
# ---------------------------------------------------------------------------------------------------------------

def cross_entropy(logits, labels, ignore_index=-100):
    """Mean of -log softmax(logits)[label] over the labels that are not ignore_index. logits (M, K), labels (M,)."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels).astype(np.int64)
    used = labels != ignore_index
    if not used.any():
        raise ValueError(f"every label is {ignore_index} (ignored): there is nothing to compute a loss on")
    bad = labels[used][(labels[used] < 0) | (labels[used] >= logits.shape[-1])]
    if bad.size:
        raise ValueError(f"label {bad[0]} is outside [0, {logits.shape[-1]}) and is not the ignored {ignore_index}")
    z = logits[used]
    log_z = z.max(-1) + np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1))
    return np.float32(np.mean(log_z - z[np.arange(len(z)), labels[used]]))


def mse(pred, target):
    return np.float32(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2))


def bce_with_logits(logits, target):
    x, y = np.asarray(logits, np.float64), np.asarray(target, np.float64)
    return np.float32(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))


def _host(x):
    from refimpl.backends import asnumpy

    return asnumpy(x)


# ---------------------------------------------------------------------------------------------------------------
# Task heads. Each sets transformers' default global attention when none is given.
# ---------------------------------------------------------------------------------------------------------------

def question_end(ids: np.ndarray, sep_token_id: int) -> np.ndarray:
    """Index of the first separator of each row, which must hold exactly three (`<s> Q </s></s> C </s>`)."""
    is_sep = ids == sep_token_id
    counts = is_sep.sum(axis=1)
    if (counts != 3).any():
        row = int(np.flatnonzero(counts != 3)[0])
        raise ValueError(
            f"row {row} has {int(counts[row])} separator tokens (id {sep_token_id}); the default global attention "
            "needs exactly three (<s> question </s></s> context </s>), or pass global_attention_mask yourself")
    return is_sep.argmax(axis=1)


class LongformerForMaskedLM(LongformerPreTrainedModel):
    """dense -> GELU -> LayerNorm -> decoder tied to the word embeddings. No default global attention."""

    optional_head_keys = ("lm_head.decoder.weight", "lm_head.decoder.bias", "lm_head.bias")

    @classmethod
    def head_shapes(cls, config):
        C, V = config.hidden_size, config.vocab_size
        return {"lm_head.dense.weight": (C, C), "lm_head.dense.bias": (C,),
                "lm_head.layer_norm.weight": (C,), "lm_head.layer_norm.bias": (C,),
                "lm_head.decoder.weight": (V, C), "lm_head.decoder.bias": (V,), "lm_head.bias": (V,)}

    @classmethod
    def tie_weights(cls, params):
        params = dict(params)
        params.setdefault("lm_head.decoder.weight", params["embeddings.word_embeddings.weight"])
        if "lm_head.bias" not in params and "lm_head.decoder.bias" not in params:
            raise ValueError("the checkpoint is missing the output bias of the LM head (lm_head.bias)")
        params.setdefault("lm_head.bias", params.get("lm_head.decoder.bias"))
        params.pop("lm_head.decoder.bias", None)
        return params

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None, output_attentions=False, output_hidden_states=False):
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states)
        w, eps = self.weights, self.config.layer_norm_eps
        x = self.backend.gelu(out.last_hidden_state @ w["lm_head.dense.weight"].T + w["lm_head.dense.bias"])
        x = self.backend.layer_norm(x, w["lm_head.layer_norm.weight"], w["lm_head.layer_norm.bias"], eps)
        logits = x @ w["lm_head.decoder.weight"].T + w["lm_head.bias"]  # (B, N, V)
        loss = None
        if labels is not None:
            labels = _int_array(labels, "labels", logits.shape[:2])
            loss = cross_entropy(_host(logits).reshape(-1, self.config.vocab_size), labels.reshape(-1))
        return LongformerMaskedLMOutput(loss, logits, out.hidden_states, out.attentions, out.global_attentions)


class LongformerForSequenceClassification(LongformerPreTrainedModel):
    """dense -> tanh -> out_proj on the first token. Default global attention: the first token."""

    @classmethod
    def head_shapes(cls, config):
        C, L = config.hidden_size, config.num_labels
        return {"classifier.dense.weight": (C, C), "classifier.dense.bias": (C,),
                "classifier.out_proj.weight": (L, C), "classifier.out_proj.bias": (L,)}

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None, output_attentions=False, output_hidden_states=False):
        if global_attention_mask is None:
            global_attention_mask = np.zeros(np.shape(input_ids), np.int64)
            global_attention_mask[:, 0] = 1  # global attention on <s>
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states)
        w = self.weights
        x = self.backend.xp.tanh(out.last_hidden_state[:, 0] @ w["classifier.dense.weight"].T
                                 + w["classifier.dense.bias"])  # (B, C)
        logits = x @ w["classifier.out_proj.weight"].T + w["classifier.out_proj.bias"]  # (B, L)
        loss = None if labels is None else self.loss(_host(logits), labels)
        return LongformerSequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions,
                                                  out.global_attentions)

    def loss(self, logits, labels):
        """transformers' choice: one label -> regression (MSE); integer labels -> cross-entropy; else multi-label."""
        L = self.config.num_labels
        labels = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
        problem = self.config.problem_type
        if problem is None:
            integer = np.issubdtype(labels.dtype, np.integer)
            problem = "regression" if L == 1 else ("single_label_classification" if integer
                                                   else "multi_label_classification")
        if problem == "regression":
            return mse(logits.squeeze(), labels.squeeze()) if L == 1 else mse(logits, labels)
        if problem == "single_label_classification":
            return cross_entropy(logits.reshape(-1, L), labels.reshape(-1))
        if labels.shape != logits.shape:
            raise ValueError(f"multi-label targets must have the logits' shape {logits.shape}, got {labels.shape}")
        return bce_with_logits(logits, labels)


class LongformerForTokenClassification(LongformerPreTrainedModel):
    """A linear classifier on every token. No default global attention."""

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (config.num_labels, config.hidden_size), "classifier.bias": (config.num_labels,)}

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None, output_attentions=False, output_hidden_states=False):
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states)
        w = self.weights
        logits = out.last_hidden_state @ w["classifier.weight"].T + w["classifier.bias"]  # (B, N, L)
        loss = None
        if labels is not None:
            labels = _int_array(labels, "labels", logits.shape[:2])
            loss = cross_entropy(_host(logits).reshape(-1, self.config.num_labels), labels.reshape(-1))
        return LongformerTokenClassifierOutput(loss, logits, out.hidden_states, out.attentions,
                                               out.global_attentions)


class LongformerForQuestionAnswering(LongformerPreTrainedModel):
    """Start and end logits per token. Default global attention: the question, every token before the first </s>."""

    @classmethod
    def head_shapes(cls, config):
        if config.num_labels != 2:
            raise ValueError(f"question answering needs num_labels == 2 (start, end), got {config.num_labels}")
        return {"qa_outputs.weight": (2, config.hidden_size), "qa_outputs.bias": (2,)}

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, start_positions=None, end_positions=None, output_attentions=False,
                output_hidden_states=False):
        if global_attention_mask is None:
            ids = _int_array(input_ids, "input_ids")
            if ids.ndim != 2:
                raise ValueError(f"input_ids must have shape (batch, sequence), got {ids.shape}")
            global_attention_mask = np.arange(ids.shape[1])[None, :] < question_end(ids, self.config.sep_token_id)[:, None]
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states)
        w = self.weights
        logits = out.last_hidden_state @ w["qa_outputs.weight"].T + w["qa_outputs.bias"]  # (B, N, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]  # (B, N) each
        loss = None
        if start_positions is not None and end_positions is not None:
            # positions outside the input are clamped to N and ignored, as transformers does
            n = start_logits.shape[1]
            start = np.clip(_int_array(start_positions, "start_positions").reshape(-1), 0, n)
            end = np.clip(_int_array(end_positions, "end_positions").reshape(-1), 0, n)
            loss = np.float32((cross_entropy(_host(start_logits), start, ignore_index=n)
                               + cross_entropy(_host(end_logits), end, ignore_index=n)) / 2)
        return LongformerQuestionAnsweringModelOutput(loss, start_logits, end_logits, out.hidden_states,
                                                      out.attentions, out.global_attentions)


class LongformerForMultipleChoice(LongformerPreTrainedModel):
    """One score per choice from the pooled first token. Inputs (B, K, N). Default global attention: each choice's
    tokens after the first </s></s> (the part that differs between choices)."""

    add_pooling_layer = True

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (1, config.hidden_size), "classifier.bias": (1,)}

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None, output_attentions=False, output_hidden_states=False):
        ids = _int_array(input_ids, "input_ids")
        if ids.ndim != 3:
            raise ValueError(f"input_ids must have shape (batch, choices, sequence), got {ids.shape}")
        B, K, N = ids.shape
        if global_attention_mask is None:
            after = np.arange(N)[None, :] > (question_end(ids.reshape(B * K, N), self.config.sep_token_id)[:, None] + 1)
            global_attention_mask = after.reshape(B, K, N)

        def flatten(x, name):
            return None if x is None else _int_array(x, name, (B, K, N)).reshape(B * K, N)

        out = self.encode(ids.reshape(B * K, N), flatten(attention_mask, "attention_mask"),
                          flatten(global_attention_mask, "global_attention_mask"),
                          flatten(token_type_ids, "token_type_ids"), flatten(position_ids, "position_ids"),
                          output_attentions, output_hidden_states)
        w = self.weights
        logits = (self.pool(out.last_hidden_state) @ w["classifier.weight"].T + w["classifier.bias"]).reshape(B, K)
        loss = None
        if labels is not None:
            loss = cross_entropy(_host(logits), _int_array(labels, "labels").reshape(-1))
        return LongformerMultipleChoiceModelOutput(loss, logits, out.hidden_states, out.attentions,
                                                   out.global_attentions)


MODEL_CLASSES = {cls.__name__: cls for cls in (
    LongformerModel, LongformerForMaskedLM, LongformerForSequenceClassification, LongformerForTokenClassification,
    LongformerForQuestionAnswering, LongformerForMultipleChoice)}

__all__ = [*MODEL_CLASSES, "LOCAL", "GLOBAL", "PADDING", "gelu", "layer_norm"]
