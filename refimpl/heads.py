"""The five task heads of transformers' Longformer, on top of the encoder of `refimpl/model.py`.

Each head is a few dense layers on the encoder's last hidden state, transformers' default global attention for its
task when none is given, and its loss. Losses are computed on the host in float64 and returned as float32 scalars.

Legend: B batch, N sequence length, C hidden size, V vocabulary, L labels, K choices.
"""

from __future__ import annotations

import warnings

import numpy as np

from refimpl.backends import asnumpy
from refimpl.inputs import int_array
from refimpl.model import LayerNorm, Linear, LongformerModel, LongformerPreTrainedModel
from refimpl.outputs import (
    LongformerMaskedLMOutput,
    LongformerMultipleChoiceModelOutput,
    LongformerQuestionAnsweringModelOutput,
    LongformerSequenceClassifierOutput,
    LongformerTokenClassifierOutput,
)


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


def labels_of(labels, name: str, shape: tuple, integer: bool = True) -> np.ndarray:
    """Labels as int64 (or float64 targets) of exactly `shape`, or a ValueError giving the shape expected."""
    labels = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if integer:
        labels = int_array(labels, name)
    elif labels.dtype == object or labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.number):
        raise ValueError(f"{name} must hold numbers, got dtype {labels.dtype}")
    if labels.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} to match the logits, got {labels.shape}")
    if not integer and not np.isfinite(labels).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return labels if integer else labels.astype(np.float64)


def token_loss(logits, labels):
    """Cross-entropy of one label per token: logits (B, N, K), labels (B, N) (-100: ignored)."""
    labels = labels_of(labels, "labels", logits.shape[:2])
    return cross_entropy(asnumpy(logits).reshape(-1, logits.shape[-1]), labels.reshape(-1))


def batch_shape(input_ids, inputs_embeds, dims: int) -> tuple:
    """The (B, N) (or (B, K, N)) shape of the inputs, from the ids or from the embeddings."""
    if input_ids is not None:
        ids = int_array(input_ids, "input_ids")
        return ids.shape
    if inputs_embeds is None:
        raise ValueError("give exactly one of input_ids and inputs_embeds (got neither)")
    return np.shape(inputs_embeds)[:dims]


class LongformerForMaskedLM(LongformerPreTrainedModel):
    """dense -> GELU -> LayerNorm -> decoder tied to the word embeddings. No default global attention."""

    optional_head_keys = ("lm_head.decoder.weight", "lm_head.decoder.bias", "lm_head.bias")
    alias_head_keys = ("lm_head.decoder.bias",)  # the same array as lm_head.bias

    @classmethod
    def head_shapes(cls, config):
        C, V = config.hidden_size, config.vocab_size
        return {"lm_head.dense.weight": (C, C), "lm_head.dense.bias": (C,),
                "lm_head.layer_norm.weight": (C,), "lm_head.layer_norm.bias": (C,),
                "lm_head.decoder.weight": (V, C), "lm_head.decoder.bias": (V,), "lm_head.bias": (V,)}

    def build_head(self, weights):
        self.dense = Linear(weights, "lm_head.dense")
        self.layer_norm = LayerNorm(weights, "lm_head.layer_norm", self.config.layer_norm_eps, self.backend)
        self.decoder = Linear(weights, "lm_head.decoder", bias="lm_head.bias")  # tied to the word embeddings

    @classmethod
    def tie_weights(cls, params, config):
        """The decoder is the word embedding table (transformers' tie_word_embeddings, true unless the config says
        otherwise); its bias is lm_head.bias, under either saved name."""
        params = dict(params)
        if config.extra.get("tie_word_embeddings", True):
            params["lm_head.decoder.weight"] = params["embeddings.word_embeddings.weight"]
        elif "lm_head.decoder.weight" not in params:
            raise ValueError("tie_word_embeddings is false but the checkpoint has no lm_head.decoder.weight")
        if "lm_head.decoder.bias" in params:
            params.setdefault("lm_head.bias", params.pop("lm_head.decoder.bias"))
        return params

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, *, masked_lm_labels=None):
        """masked_lm_labels: the old name of labels (transformers before 4.0), accepted with a FutureWarning so
        that code of that time, such as the snippet of transformers' Longformer page, runs as written; like
        transformers then, it replaces labels when both are given."""
        if masked_lm_labels is not None:  # as transformers 3 did: the old name wins over labels
            warnings.warn("masked_lm_labels is deprecated and replaces labels when both are given; use labels",
                          FutureWarning, stacklevel=2)
            labels = masked_lm_labels
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          inputs_embeds, output_attentions, output_hidden_states)
        x = self.backend.gelu(self.dense(out.last_hidden_state))  # (B, N, C)
        logits = self.decoder(self.layer_norm(x))  # (B, N, V)
        loss = None if labels is None else token_loss(logits, labels)
        return self.returned(LongformerMaskedLMOutput(loss, logits, out.hidden_states, out.attentions,
                                                      out.global_attentions), return_dict)


class LongformerForSequenceClassification(LongformerPreTrainedModel):
    """dense -> tanh -> out_proj on the first token. Default global attention: the first token."""

    @classmethod
    def head_shapes(cls, config):
        C, L = config.hidden_size, config.num_labels
        return {"classifier.dense.weight": (C, C), "classifier.dense.bias": (C,),
                "classifier.out_proj.weight": (L, C), "classifier.out_proj.bias": (L,)}

    def build_head(self, weights):
        self.dense = Linear(weights, "classifier.dense")
        self.out_proj = Linear(weights, "classifier.out_proj")

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        if global_attention_mask is None:
            global_attention_mask = np.zeros(batch_shape(input_ids, inputs_embeds, 2), np.int64)
            global_attention_mask[:, 0] = 1  # global attention on <s>
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          inputs_embeds, output_attentions, output_hidden_states)
        x = self.backend.xp.tanh(self.dense(out.last_hidden_state[:, 0]))  # (B, C)
        logits = self.out_proj(x)  # (B, L)
        loss = None if labels is None else self.loss(asnumpy(logits), labels)
        return self.returned(LongformerSequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions,
                                                                out.global_attentions), return_dict)

    def loss(self, logits, labels):
        """transformers' choice: one label -> regression (MSE); integer labels -> cross-entropy; else multi-label.
        logits (B, L); labels (B,) for classification and one-label regression, (B, L) otherwise."""
        B, L = logits.shape
        raw = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
        problem = self.config.problem_type
        if problem is None:
            integer = np.issubdtype(raw.dtype, np.integer)
            problem = "regression" if L == 1 else ("single_label_classification" if integer
                                                   else "multi_label_classification")
        if problem == "regression":
            if L == 1:
                shape = (B,) if raw.ndim == 1 else (B, 1)
                return mse(logits.reshape(shape), labels_of(raw, "labels", shape, integer=False))
            return mse(logits, labels_of(raw, "labels", (B, L), integer=False))
        if problem == "single_label_classification":
            return cross_entropy(logits, labels_of(raw, "labels", (B,)))
        return bce_with_logits(logits, labels_of(raw, "labels", (B, L), integer=False))


class LongformerForTokenClassification(LongformerPreTrainedModel):
    """A linear classifier on every token. No default global attention."""

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (config.num_labels, config.hidden_size), "classifier.bias": (config.num_labels,)}

    def build_head(self, weights):
        self.classifier = Linear(weights, "classifier")

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          inputs_embeds, output_attentions, output_hidden_states)
        logits = self.classifier(out.last_hidden_state)  # (B, N, L)
        loss = None if labels is None else token_loss(logits, labels)
        return self.returned(LongformerTokenClassifierOutput(loss, logits, out.hidden_states, out.attentions,
                                                             out.global_attentions), return_dict)


class LongformerForQuestionAnswering(LongformerPreTrainedModel):
    """Start and end logits per token. Default global attention: the question, every token before the first </s>."""

    @classmethod
    def head_shapes(cls, config):
        if config.num_labels != 2:
            raise ValueError(f"question answering needs num_labels == 2 (start, end), got {config.num_labels}")
        return {"qa_outputs.weight": (2, config.hidden_size), "qa_outputs.bias": (2,)}

    def build_head(self, weights):
        self.qa_outputs = Linear(weights, "qa_outputs")

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, start_positions=None, end_positions=None,
                output_attentions=None, output_hidden_states=None, return_dict=None):
        if global_attention_mask is None:
            if input_ids is None:
                raise ValueError("the default global attention of question answering (the question's tokens) is "
                                 "found from input_ids; with inputs_embeds, pass global_attention_mask")
            ids = int_array(input_ids, "input_ids")
            if ids.ndim != 2:
                raise ValueError(f"input_ids must have shape (batch, sequence), got {ids.shape}")
            global_attention_mask = np.arange(ids.shape[1])[None, :] < question_end(ids, self.config.sep_token_id)[:, None]
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          inputs_embeds, output_attentions, output_hidden_states)
        logits = self.qa_outputs(out.last_hidden_state)  # (B, N, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]  # (B, N) each
        loss = None
        if (start_positions is None) != (end_positions is None):
            raise ValueError("give both start_positions and end_positions for a loss, or neither")
        if start_positions is not None:
            # positions outside the input are clamped to N and ignored, as transformers does
            B, N = start_logits.shape
            start, end = (labels_of(p, name, (B,)) if np.ndim(p) == 1 else labels_of(p, name, (B, 1)).reshape(B)
                          for p, name in ((start_positions, "start_positions"), (end_positions, "end_positions")))
            for name, p in (("start_positions", start), ("end_positions", end)):
                if ((p < 0) | (p >= N)).all():
                    raise ValueError(f"every one of {name} {p.tolist()} lies outside the {N} tokens (0..{N - 1}); "
                                     "positions outside are ignored, as in transformers, so no loss is left")
            start, end = np.clip(start, 0, N), np.clip(end, 0, N)
            loss = np.float32((cross_entropy(asnumpy(start_logits), start, ignore_index=N)
                               + cross_entropy(asnumpy(end_logits), end, ignore_index=N)) / 2)
        return self.returned(LongformerQuestionAnsweringModelOutput(
            loss, start_logits, end_logits, out.hidden_states, out.attentions, out.global_attentions), return_dict)


class LongformerForMultipleChoice(LongformerPreTrainedModel):
    """One score per choice from the pooled first token. Inputs (B, K, N). Default global attention: each choice's
    tokens after the first </s></s> (the part that differs between choices)."""

    add_pooling_layer = True

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (1, config.hidden_size), "classifier.bias": (1,)}

    def build_head(self, weights):
        self.classifier = Linear(weights, "classifier")

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, global_attention_mask=None,
                labels=None, position_ids=None, inputs_embeds=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        shape = batch_shape(input_ids, inputs_embeds, 3)
        if len(shape) != 3:
            raise ValueError(f"input_ids must have shape (batch, choices, sequence), got {shape}")
        B, K, N = shape
        ids = None if input_ids is None else int_array(input_ids, "input_ids").reshape(B * K, N)
        if global_attention_mask is None and ids is None:
            raise ValueError("the default global attention of multiple choice (each choice's answer) is found from "
                             "input_ids; with inputs_embeds, pass global_attention_mask")
        if global_attention_mask is None:
            after = np.arange(N)[None, :] > (question_end(ids, self.config.sep_token_id)[:, None] + 1)
            global_attention_mask = after.reshape(B, K, N)

        def flatten(x, name):
            return None if x is None else int_array(x, name, (B, K, N), allow_bool=True).reshape(B * K, N)

        embeds = None if inputs_embeds is None else np.reshape(inputs_embeds, (B * K, N, -1))  # (B*K, N, C)
        out = self.encode(ids, flatten(attention_mask, "attention_mask"),
                          flatten(global_attention_mask, "global_attention_mask"),
                          flatten(token_type_ids, "token_type_ids"), flatten(position_ids, "position_ids"),
                          embeds, output_attentions, output_hidden_states)
        logits = self.classifier(self.pool(out.last_hidden_state)).reshape(B, K)  # (B, K)
        loss = None
        if labels is not None:
            loss = cross_entropy(asnumpy(logits), labels_of(labels, "labels", (B,)))
        return self.returned(LongformerMultipleChoiceModelOutput(loss, logits, out.hidden_states, out.attentions,
                                                                 out.global_attentions), return_dict)


MODEL_CLASSES = {cls.__name__: cls for cls in (
    LongformerModel, LongformerForMaskedLM, LongformerForSequenceClassification, LongformerForTokenClassification,
    LongformerForQuestionAnswering, LongformerForMultipleChoice)}
