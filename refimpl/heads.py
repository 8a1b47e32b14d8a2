"""The five task heads of transformers' Longformer, on top of the encoder of `refimpl/model.py`.

Each head is a few dense layers on the encoder's last hidden state, transformers' default global attention for its
task when none is given, and its loss. Losses are computed on the host in float64 and returned as float32 scalars.

Legend: B batch, N sequence length, C hidden size, V vocabulary, L labels, K choices.
"""

from __future__ import annotations

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


class LongformerForMaskedLM(LongformerPreTrainedModel):
    """dense -> GELU -> LayerNorm -> decoder tied to the word embeddings. No default global attention."""

    optional_head_keys = ("lm_head.decoder.weight", "lm_head.decoder.bias", "lm_head.bias")

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
        x = self.backend.gelu(self.dense(out.last_hidden_state))  # (B, N, C)
        logits = self.decoder(self.layer_norm(x))  # (B, N, V)
        loss = None
        if labels is not None:
            labels = int_array(labels, "labels", logits.shape[:2])
            loss = cross_entropy(asnumpy(logits).reshape(-1, self.config.vocab_size), labels.reshape(-1))
        return LongformerMaskedLMOutput(loss, logits, out.hidden_states, out.attentions, out.global_attentions)


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

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None, output_attentions=False, output_hidden_states=False):
        if global_attention_mask is None:
            global_attention_mask = np.zeros(np.shape(input_ids), np.int64)
            global_attention_mask[:, 0] = 1  # global attention on <s>
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states)
        x = self.backend.xp.tanh(self.dense(out.last_hidden_state[:, 0]))  # (B, C)
        logits = self.out_proj(x)  # (B, L)
        loss = None if labels is None else self.loss(asnumpy(logits), labels)
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

    def build_head(self, weights):
        self.classifier = Linear(weights, "classifier")

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None, output_attentions=False, output_hidden_states=False):
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states)
        logits = self.classifier(out.last_hidden_state)  # (B, N, L)
        loss = None
        if labels is not None:
            labels = int_array(labels, "labels", logits.shape[:2])
            loss = cross_entropy(asnumpy(logits).reshape(-1, self.config.num_labels), labels.reshape(-1))
        return LongformerTokenClassifierOutput(loss, logits, out.hidden_states, out.attentions,
                                               out.global_attentions)


class LongformerForQuestionAnswering(LongformerPreTrainedModel):
    """Start and end logits per token. Default global attention: the question, every token before the first </s>."""

    @classmethod
    def head_shapes(cls, config):
        if config.num_labels != 2:
            raise ValueError(f"question answering needs num_labels == 2 (start, end), got {config.num_labels}")
        return {"qa_outputs.weight": (2, config.hidden_size), "qa_outputs.bias": (2,)}

    def build_head(self, weights):
        self.qa_outputs = Linear(weights, "qa_outputs")

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, start_positions=None, end_positions=None, output_attentions=False,
                output_hidden_states=False):
        if global_attention_mask is None:
            ids = int_array(input_ids, "input_ids")
            if ids.ndim != 2:
                raise ValueError(f"input_ids must have shape (batch, sequence), got {ids.shape}")
            global_attention_mask = np.arange(ids.shape[1])[None, :] < question_end(ids, self.config.sep_token_id)[:, None]
        out = self.encode(input_ids, attention_mask, global_attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states)
        logits = self.qa_outputs(out.last_hidden_state)  # (B, N, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]  # (B, N) each
        loss = None
        if start_positions is not None and end_positions is not None:
            # positions outside the input are clamped to N and ignored, as transformers does
            n = start_logits.shape[1]
            start = np.clip(int_array(start_positions, "start_positions").reshape(-1), 0, n)
            end = np.clip(int_array(end_positions, "end_positions").reshape(-1), 0, n)
            loss = np.float32((cross_entropy(asnumpy(start_logits), start, ignore_index=n)
                               + cross_entropy(asnumpy(end_logits), end, ignore_index=n)) / 2)
        return LongformerQuestionAnsweringModelOutput(loss, start_logits, end_logits, out.hidden_states,
                                                      out.attentions, out.global_attentions)


class LongformerForMultipleChoice(LongformerPreTrainedModel):
    """One score per choice from the pooled first token. Inputs (B, K, N). Default global attention: each choice's
    tokens after the first </s></s> (the part that differs between choices)."""

    add_pooling_layer = True

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (1, config.hidden_size), "classifier.bias": (1,)}

    def build_head(self, weights):
        self.classifier = Linear(weights, "classifier")

    def forward(self, input_ids, attention_mask=None, global_attention_mask=None, token_type_ids=None,
                position_ids=None, labels=None, output_attentions=False, output_hidden_states=False):
        ids = int_array(input_ids, "input_ids")
        if ids.ndim != 3:
            raise ValueError(f"input_ids must have shape (batch, choices, sequence), got {ids.shape}")
        B, K, N = ids.shape
        if global_attention_mask is None:
            after = np.arange(N)[None, :] > (question_end(ids.reshape(B * K, N), self.config.sep_token_id)[:, None] + 1)
            global_attention_mask = after.reshape(B, K, N)

        def flatten(x, name):
            return None if x is None else int_array(x, name, (B, K, N)).reshape(B * K, N)

        out = self.encode(ids.reshape(B * K, N), flatten(attention_mask, "attention_mask"),
                          flatten(global_attention_mask, "global_attention_mask"),
                          flatten(token_type_ids, "token_type_ids"), flatten(position_ids, "position_ids"),
                          output_attentions, output_hidden_states)
        logits = self.classifier(self.pool(out.last_hidden_state)).reshape(B, K)  # (B, K)
        loss = None
        if labels is not None:
            loss = cross_entropy(asnumpy(logits), int_array(labels, "labels").reshape(-1))
        return LongformerMultipleChoiceModelOutput(loss, logits, out.hidden_states, out.attentions,
                                                   out.global_attentions)


MODEL_CLASSES = {cls.__name__: cls for cls in (
    LongformerModel, LongformerForMaskedLM, LongformerForSequenceClassification, LongformerForTokenClassification,
    LongformerForQuestionAnswering, LongformerForMultipleChoice)}
