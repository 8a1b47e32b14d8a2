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
import warnings

import numpy as np

from refimpl.attention import LongformerSelfAttention, global_slots
from refimpl.backends import get_backend
from refimpl.config import LongformerConfig
from refimpl.inputs import prepare_inputs
from refimpl.io import checkpoint, hub
from refimpl.ops import activation
from refimpl.outputs import LongformerBaseModelOutputWithPooling


# ---------------------------------------------------------------------------------------------------------------
# The two layers everything is made of (weights on the backend's device)
# ---------------------------------------------------------------------------------------------------------------

class Linear:
    """y = x W^T + b with W in PyTorch's (out, in) layout, as the checkpoint stores it."""

    def __init__(self, params: dict, name: str, bias: str | None = None, xp=np):
        self.weight, self.bias = params[f"{name}.weight"], params[bias or f"{name}.bias"]
        self.xp = xp  # the array module of the weights (numpy or cupy)

    def __call__(self, x):
        y = self.product(x)
        y += self.bias  # in place: one array per product, not two
        return y

    def product(self, x, out=None):
        """x W^T, without the bias (for a caller that adds it in a pass of its own); written into `out` if given."""
        return x @ self.weight.T if out is None else self.xp.matmul(x, self.weight.T, out=out)


class LayerNorm:
    def __init__(self, params: dict, name: str, eps: float, backend):
        self.weight, self.bias, self.eps, self.backend = params[f"{name}.weight"], params[f"{name}.bias"], eps, backend

    def __call__(self, x, residual=None, x_bias=None):
        """LayerNorm(x), or LayerNorm(x + x_bias + residual): x a dense layer's product and x_bias its bias (or
        None), summed in that order (a backend may fuse the sums into the norm)."""
        if residual is None:
            return self.backend.layer_norm(x, self.weight, self.bias, self.eps)
        return self.backend.residual_layer_norm(x, residual, self.weight, self.bias, self.eps, x_bias=x_bias)


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

    def __call__(self, words, position_ids, token_type_ids):
        """words: the word embeddings (B, N, C) of the ids, or the caller's inputs_embeds."""
        x = words + self.position[position_ids] + self.token_type[token_type_ids]  # (B, N, C)
        return self.norm(x)


class LongformerLayer:
    """Self-attention, then the feed-forward block, each followed by residual + LayerNorm (post-LN, as BERT)."""

    def __init__(self, params: dict, config: LongformerConfig, layer: int, backend):
        eps = config.layer_norm_eps
        self.attention = LongformerSelfAttention(sub(params, "attention.self."), config, layer, backend)
        self.attention_output = Linear(params, "attention.output.dense", xp=backend.xp)
        self.attention_norm = LayerNorm(params, "attention.output.LayerNorm", eps, backend)
        self.intermediate = Linear(params, "intermediate.dense", xp=backend.xp)
        self.act = activation(config.hidden_act, backend)
        self.output = Linear(params, "output.dense", xp=backend.xp)
        self.output_norm = LayerNorm(params, "output.LayerNorm", eps, backend)
        self.chunk_size_feed_forward, self.backend = config.chunk_size_feed_forward, backend

    def __call__(self, hidden, kind, global_index, n_global, output_attentions):
        context, probs, global_probs = self.attention(hidden, kind, global_index, n_global, output_attentions)
        dense = self.attention_output.product(context)  # (B, N, C): x W^T; its bias goes in with the norm
        hidden = self.attention_norm(dense, residual=hidden, x_bias=self.attention_output.bias)  # (B, N, C)
        ff = self.feed_forward(hidden)  # (B, N, C): the FFN without output's bias, which goes in with the norm
        hidden = self.output_norm(ff, residual=hidden, x_bias=self.output.bias)  # (B, N, C)
        return hidden, probs, global_probs

    def feed_forward(self, hidden):
        """output(act(intermediate(hidden))) less output's bias, (B, N, C) -> (B, N, C), a block of tokens at a
        time: the config's chunk_size_feed_forward (transformers' meaning), else the backend's choice
        (Backend.feed_forward_rows), else all N. Each token's result does not depend on the others, so the blocks
        change the numbers at most in BLAS's last bits (with NumPy's OpenBLAS not at all); only the (B, rows, F)
        array, the layer's largest, gets smaller; the blocks share one (made once: a new one for each block left
        freed memory for malloc to hand back to the system, and fresh pages to fault in for the next)."""
        xp = self.backend.xp
        B, N, C = hidden.shape
        F = self.intermediate.weight.shape[0]
        rows = max(1, min(self.chunk_size_feed_forward or self.backend.feed_forward_rows(N, F) or N, N))
        out = xp.empty_like(hidden)  # (B, N, C)
        buffer = xp.empty(B * rows * F, hidden.dtype)  # room for one (B, rows, F) block
        for start in range(0, N, rows):
            block = slice(start, start + rows)
            ff = buffer[:B * min(rows, N - start) * F].reshape(B, -1, F)  # (B, rows or fewer, F), C-contiguous
            self.intermediate.product(hidden[:, block], out=ff)  # x W^T; its bias goes in with the act
            ff = self.act(ff, self.intermediate.bias, out=ff)  # act(x W^T + b) in place: no second (B, rows, F)
            self.output.product(ff, out=out[:, block])  # (B, rows, C)
        return out


class LongformerPreTrainedModel:
    """What every model class shares: the encoder, loading, saving, backends. Subclasses add a head.

    `LongformerX(config)` builds new weights with transformers' initialisation; `LongformerX.from_pretrained(
    folder_or_hub_name)` loads a checkpoint. Inference only: `eval()` is accepted and does nothing.
    """

    add_pooling_layer = False  # LongformerModel and the multiple-choice head use the pooler
    optional_head_keys: tuple = ()  # head weights a checkpoint may leave out (tied ones)
    alias_head_keys: tuple = ()  # saved names of weights that tie_weights files under another name

    def __init__(self, config: LongformerConfig, params: dict[str, np.ndarray] | None = None, *, backend="numpy",
                 seed: int | None = None):
        if not isinstance(config, LongformerConfig):
            raise ValueError(f"config must be a refimpl LongformerConfig, got {type(config).__name__}")
        self.config = config
        if params is None:  # new weights, as transformers' LongformerModel(config)
            shapes, _ = self.expected_shapes(config)
            params = self.tie_weights(init_weights(shapes, config, np.random.default_rng(seed)), config)
        self.params = params  # NumPy float32, encoder names without prefix, head names as saved
        self.to_backend(backend)

    # --- weights: which, new ones, loading, saving -------------------------------------------------------------

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

    @classmethod
    def tie_weights(cls, params: dict, config: LongformerConfig) -> dict:
        """Weights that are one array under two names (the masked-LM decoder); the others have none."""
        return params

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, config: LongformerConfig | None = None,
                        backend="numpy", allow_non_finite: bool = False, **kwargs):
        """Load a transformers-format Longformer checkpoint: a folder or a Hub repository name.

        kwargs: the Hub's (revision, cache_dir, local_files_only, token, force_download), then config fields that
        override config.json (attention_window=256, num_labels=4, output_hidden_states=True), as in transformers;
        anything else is a TypeError. `config` replaces config.json (overrides still apply to it). Head weights
        the checkpoint lacks (a head loaded from a base checkpoint) are newly initialised, with a warning that lists
        them, as transformers does; missing encoder weights are an error.
        """
        hub_kwargs, overrides = hub.split_hub_keywords(kwargs)
        folder = checkpoint.weights_folder(pretrained_model_name_or_path, **hub_kwargs)  # only the weight files
        if config is None:
            config = LongformerConfig.from_json_file(
                hub.resolve(pretrained_model_name_or_path, ["config.json"], **hub_kwargs) / "config.json")
        elif not isinstance(config, LongformerConfig):
            raise ValueError(f"config must be a refimpl LongformerConfig, got {type(config).__name__}")
        if overrides:
            config = config.copy(**overrides)
        tensors = checkpoint.read_tensors(folder, allow_non_finite=allow_non_finite)
        checkpoint.check_layers(tensors, config.num_hidden_layers)  # before anything is built per layer
        shapes, optional = cls.expected_shapes(config)
        head = cls.head_shapes(config)
        params, _ = checkpoint.match_keys(tensors, shapes, optional + tuple(head))
        params = cls.tie_weights(params, config)  # tied and aliased weights first: they are not missing
        missing_head = [k for k in head if k not in params and k not in cls.alias_head_keys]
        if missing_head:
            warnings.warn(
                f"Some weights of {cls.__name__} were not in the checkpoint at {os.fspath(folder)} and are newly "
                f"initialized: {missing_head}. Train the head before using its predictions.", stacklevel=2)
            params.update(init_weights({k: head[k] for k in missing_head}, config, np.random.default_rng()))
        return cls(config, params, backend=backend)

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write config.json and model.safetensors that transformers' from_pretrained also loads."""
        self.config.architectures = [type(self).__name__]
        self.config.save_pretrained(save_directory)
        prefix = "" if isinstance(self, LongformerModel) else "longformer."
        shapes = checkpoint.encoder_shapes(self.config, pooler=True)
        saved = {(prefix + k if k in shapes else k): v for k, v in self.params.items()}
        checkpoint.save_safetensors(saved, save_directory)

    def num_parameters(self) -> int:
        """Number of weights, tied ones counted once (as transformers' num_parameters())."""
        seen, total = set(), 0
        for array in self.params.values():
            if id(array) not in seen:
                seen.add(id(array))
                total += int(array.size)
        return total

    def get_input_embeddings(self):
        """The word embedding table (V, C) on the backend's device (transformers returns the nn.Embedding)."""
        return self.embeddings.word

    def eval(self):
        """Inference only, always: nothing to switch off. Returns self, so `Model.from_pretrained(...).eval()`
        reads as in transformers."""
        return self

    def to_backend(self, backend):
        """Move the weights to another backend ("numpy", "numba", "cupy", "dense") and rebuild the layers."""
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
        self.config = self.config.copy(attention_window=attention_window)
        self.to_backend(self.backend)

    # --- the encoder -------------------------------------------------------------------------------------------

    def encode(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
               position_ids=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None):
        """The Longformer encoder (transformers' LongformerModel.forward, without the pooler)."""
        cfg = self.config
        output_attentions = cfg.output_attentions if output_attentions is None else bool(output_attentions)
        output_hidden_states = cfg.output_hidden_states if output_hidden_states is None else bool(output_hidden_states)
        ids, embeds, kind, token_type_ids, position_ids = prepare_inputs(
            cfg, input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids, inputs_embeds)
        global_index, n_global = global_slots(kind)  # (B, G), (B,)
        up = self.backend.asarray
        kind_d = up(kind.astype(np.int8))
        global_index_d, n_global_d = up(global_index), up(n_global)

        words = self.embeddings.word[up(ids)] if embeds is None else up(embeds)  # (B, N, C)
        hidden = self.embeddings(words, up(position_ids), up(token_type_ids))  # (B, N, C)
        # every layer's states are kept only when asked: otherwise they are freed layer by layer
        all_hidden, all_probs, all_global_probs = ([hidden] if output_hidden_states else []), [], []
        for layer in self.layers:
            hidden, probs, global_probs = layer(hidden, kind_d, global_index_d, n_global_d, output_attentions)
            if output_hidden_states:
                all_hidden.append(hidden)
            all_probs.append(probs)
            all_global_probs.append(global_probs)

        has_global = global_index.shape[1] > 0
        return LongformerBaseModelOutputWithPooling(
            last_hidden_state=hidden,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_probs) if output_attentions else None,
            global_attentions=tuple(all_global_probs) if output_attentions and has_global else None,
        )

    def pool(self, hidden):
        """The pooler: dense + tanh on the first token. (B, N, C) -> (B, C)."""
        return self.backend.xp.tanh(self.pooler(hidden[:, 0]))

    def returned(self, output, return_dict):
        """The output as transformers returns it: the ModelOutput, or its tuple when return_dict is False."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)


class LongformerModel(LongformerPreTrainedModel):
    """The bare encoder: last_hidden_state, pooler_output and, on request, every layer's states and attentions."""

    add_pooling_layer = True

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          inputs_embeds, output_attentions, output_hidden_states)
        if self.pooler is not None:
            out.pooler_output = self.pool(out.last_hidden_state)
        return self.returned(out, return_dict)


def init_weights(shapes: dict[str, tuple], config: LongformerConfig, rng: np.random.Generator) -> dict:
    """New weights as transformers' _init_weights makes them: matrices and embeddings normal(0, initializer_range),
    biases 0, LayerNorm weight 1; the padding rows of the word and position embeddings 0 (nn.Embedding's
    padding_idx). float32."""
    params = {}
    for name, shape in shapes.items():
        if name.endswith(("LayerNorm.weight", "layer_norm.weight")):
            params[name] = np.ones(shape, np.float32)
        elif name.endswith("bias"):
            params[name] = np.zeros(shape, np.float32)
        else:
            params[name] = (rng.standard_normal(shape, dtype=np.float32) * np.float32(config.initializer_range))
    for name in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"):
        if name in params:
            params[name][config.pad_token_id] = 0
    return params
