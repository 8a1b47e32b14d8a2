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

import os

import numpy as np

from refimpl.attention import LongformerSelfAttention, global_slots
from refimpl.backends import get_backend
from refimpl.config import LongformerConfig
from refimpl.inputs import prepare_inputs
from refimpl.io import checkpoint
from refimpl.ops import activation
from refimpl.outputs import LongformerBaseModelOutputWithPooling


# ---------------------------------------------------------------------------------------------------------------
# The two layers everything is made of (weights on the backend's device)
# ---------------------------------------------------------------------------------------------------------------

class Linear:
    """y = x W^T + b with W in PyTorch's (out, in) layout, as the checkpoint stores it."""

    def __init__(self, params: dict, name: str, bias: str | None = None):
        self.weight, self.bias = params[f"{name}.weight"], params[bias or f"{name}.bias"]

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
        self.build_head(dev)
        return self

    def build_head(self, weights: dict) -> None:
        """The head's layers from its weights on the backend's device; the bare encoder has none."""

    def set_attention_window(self, attention_window) -> None:
        """Change the window (an even int, or one per layer) and rebuild; the weights do not depend on it."""
        self.config = LongformerConfig.from_dict({**self.config.to_dict(), "attention_window": attention_window})
        self.to_backend(self.backend)

    # --- the encoder -------------------------------------------------------------------------------------------

    def encode(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
               position_ids=None, output_attentions=False, output_hidden_states=False):
        """The Longformer encoder (transformers' LongformerModel.forward)."""
        ids, kind, token_type_ids, position_ids = prepare_inputs(
            self.config, input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids)
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


