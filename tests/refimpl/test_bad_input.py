"""Bad input gets a ValueError that says what was wrong and what is allowed; never a crash, a hang or a NaN."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl.config import LongformerConfig


@pytest.fixture(scope="module")
def model(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerModel")
    return refimpl.LongformerModel.from_pretrained(directory)


IDS = np.full((2, 6), 5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(input_ids=[[5, 97, 3]]), r"input_ids holds 97, outside \[0, 97\)"),
    (dict(input_ids=[[5, -1, 3]]), r"input_ids holds -1, outside \[0, 97\)"),
    (dict(input_ids=[[5.0, 6.0]]), "input_ids must hold integers"),
    (dict(input_ids=[5, 6, 7]), r"input_ids must have shape \(batch, sequence\)"),
    (dict(input_ids=np.zeros((1, 0), int)), r"input_ids must have shape \(batch, sequence\) with both >= 1"),
    (dict(input_ids=[[5, 6], [7]]), "rectangular array of integers"),
    (dict(input_ids=np.full((1, 123), 5)), "the input has 123 tokens but the position table holds at most 122"),
    (dict(input_ids=IDS, attention_mask=np.ones((2, 5), int)), r"attention_mask has shape \(2, 5\) but input_ids"),
    (dict(input_ids=IDS, attention_mask=np.full((2, 6), 3)), "attention_mask holds 3.*0 padding, 1 attend, 2 global"),
    (dict(input_ids=IDS, global_attention_mask=np.full((2, 6), 2)), r"global_attention_mask holds 2.*0 local, 1 global"),
    (dict(input_ids=IDS, token_type_ids=np.full((2, 6), 2)), "token_type_ids holds 2.*2 token type"),
    (dict(input_ids=IDS, position_ids=np.full((2, 6), 124)), "position_ids holds 124.*124 rows"),
])
def test_bad_model_inputs_are_named(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


def test_a_row_of_only_padding_gives_finite_outputs(model):
    """Every key of the row is masked: the softmax must not produce NaN (transformers fills with finfo.min too)."""
    ids = np.full((2, 8), 5)
    mask = np.ones((2, 8), int)
    mask[1] = 0
    glob = np.zeros((2, 8), int)
    glob[0, 2] = 1
    out = model(ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True)
    assert np.isfinite(out.last_hidden_state).all()
    assert not out.attentions[0][1].any() and not out.global_attentions[0][1].any()


@pytest.mark.parametrize("window,message", [
    (5, "even, positive integers"), (0, "even, positive integers"), (-4, "even, positive integers"),
    ([4, 8], "has 2 entries but the model has 3 layers"), ("wide", "must be an int or a list"),
])
def test_bad_windows(checkpoint_factory, window, message):
    directory, _ = checkpoint_factory("LongformerModel")
    with pytest.raises(ValueError, match=message):
        refimpl.LongformerModel.from_pretrained(directory, attention_window=window)


def test_bad_configs():
    with pytest.raises(ValueError, match=r"hidden_size \(30\) must be a multiple of num_attention_heads \(4\)"):
        LongformerConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="hidden_act 'mish' is not supported"):
        LongformerConfig(hidden_act="mish")


def test_question_answering_default_needs_three_separators(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerForQuestionAnswering", num_labels=2)
    qa = refimpl.LongformerForQuestionAnswering.from_pretrained(directory)
    with pytest.raises(ValueError, match="row 0 has 1 separator tokens.*exactly three"):
        qa([[0, 5, 6, 2, 7, 8]])


def test_unknown_and_unavailable_backends_name_the_alternatives(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerModel")
    with pytest.raises(ValueError, match="unknown backend 'jax'; known backends: numpy, numba, cupy"):
        refimpl.LongformerModel.from_pretrained(directory, backend="jax")
    reasons = refimpl.available_backends()
    assert reasons["numpy"] is None
    for name, why in reasons.items():
        if why is not None:  # here: cupy without a GPU
            with pytest.raises(ValueError, match=f"backend '{name}' is not available: .*Available here: numpy"):
                refimpl.LongformerModel.from_pretrained(directory, backend=name)


# ---------------------------------------------------------------------------------------------------------------
# The table: every model-side entry point (forward of each head, config, from_pretrained, backends, the CLI) with
# inputs that are wrong in one way each. Every row asserts the exception type and that the message names the problem.
# ---------------------------------------------------------------------------------------------------------------

ROW = np.array([[0, 5, 6, 2, 2, 7, 8, 9, 2]])  # <s> q q </s></s> c c c </s>: the QA and MC defaults accept it
U64 = np.array([[2**63 + 5]], dtype=np.uint64)

MODEL_CASES = {
    "bool ids": (dict(input_ids=np.ones((1, 4), bool)), ValueError, "input_ids must hold integers, got dtype bool"),
    "uint64 id above 2**63": (dict(input_ids=U64), ValueError, f"input_ids holds {2**63 + 5}, larger than any"),
    "complex ids": (dict(input_ids=np.ones((1, 3), complex)), ValueError, "input_ids must hold integers"),
    "string ids": (dict(input_ids=[["a", "b"]]), ValueError, "input_ids must hold integers"),
    "object ids": (dict(input_ids=np.array([[1, None]], dtype=object)), ValueError, "input_ids must hold integers"),
    "3-d ids": (dict(input_ids=np.ones((1, 2, 3), int)), ValueError, r"input_ids must have shape \(batch, sequence\)"),
    "scalar ids": (dict(input_ids=5), ValueError, r"input_ids must have shape \(batch, sequence\)"),
    "empty batch": (dict(input_ids=np.zeros((0, 4), int)), ValueError, "both >= 1"),
    "no ids, no embeds": (dict(), ValueError, "exactly one of input_ids and inputs_embeds"),
    "ids and embeds": (dict(input_ids=IDS, inputs_embeds=np.zeros((2, 6, 32), np.float32)), ValueError,
                       "exactly one of input_ids and inputs_embeds"),
    "embeds of the wrong width": (dict(inputs_embeds=np.zeros((1, 4, 31), np.float32)), ValueError,
                                  r"inputs_embeds must have shape \(batch, sequence, hidden_size=32\)"),
    "embeds with NaN": (dict(inputs_embeds=np.full((1, 4, 32), np.nan, np.float32)), ValueError,
                        "inputs_embeds holds NaN or infinite values"),
    "embeds with inf": (dict(inputs_embeds=np.full((1, 4, 32), np.inf, np.float32)), ValueError, "NaN or infinite"),
    "embeds of strings": (dict(inputs_embeds=np.full((1, 4, 32), "x")), ValueError, "inputs_embeds must hold real"),
    "float mask": (dict(input_ids=IDS, attention_mask=np.ones((2, 6))), ValueError,
                   "attention_mask must hold integers"),
    "negative mask": (dict(input_ids=IDS, attention_mask=np.full((2, 6), -1)), ValueError, "attention_mask holds -1"),
    "global mask of the wrong shape": (dict(input_ids=IDS, global_attention_mask=np.zeros((2, 7), int)), ValueError,
                                       r"global_attention_mask has shape \(2, 7\)"),
    "negative global mask": (dict(input_ids=IDS, global_attention_mask=np.full((2, 6), -1)), ValueError,
                             "global_attention_mask holds -1"),
    "ragged mask": (dict(input_ids=IDS, attention_mask=[[1] * 6, [1] * 5]), ValueError, "rectangular"),
    "token types of the wrong shape": (dict(input_ids=IDS, token_type_ids=np.zeros((6, 2), int)), ValueError,
                                       r"token_type_ids has shape \(6, 2\)"),
    "negative token type": (dict(input_ids=IDS, token_type_ids=np.full((2, 6), -1)), ValueError,
                            "token_type_ids holds -1"),
    "negative position": (dict(input_ids=IDS, position_ids=np.full((2, 6), -3)), ValueError, "position_ids holds -3"),
    "float positions": (dict(input_ids=IDS, position_ids=np.zeros((2, 6))), ValueError, "position_ids must hold int"),
    "unknown keyword": (dict(input_ids=IDS, global_attention=np.zeros((2, 6), int)), TypeError, "global_attention"),
    "labels on the bare model": (dict(input_ids=IDS, labels=IDS), TypeError, "labels"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_model_inputs_table(model, case):
    kwargs, error, message = MODEL_CASES[case]
    with pytest.raises(error, match=message):
        model(**kwargs)


@pytest.fixture(scope="module")
def heads(checkpoint_factory):
    loaded = {}
    for name, extra in (("LongformerForMaskedLM", {}), ("LongformerForSequenceClassification", {"num_labels": 3}),
                        ("LongformerForTokenClassification", {"num_labels": 3}),
                        ("LongformerForQuestionAnswering", {"num_labels": 2}), ("LongformerForMultipleChoice", {})):
        directory, _ = checkpoint_factory(name, **extra)
        loaded[name] = getattr(refimpl, name).from_pretrained(directory)
    return loaded


TWO = np.repeat(ROW, 2, axis=0)  # (2, 9)
CHOICES = np.stack([TWO, TWO])  # (B=2, K=2, N=9)

HEAD_CASES = {
    "mlm labels of the wrong shape": ("LongformerForMaskedLM", dict(input_ids=TWO, labels=TWO[:, :5]), ValueError,
                                      r"labels must have shape \(2, 9\)"),
    "mlm labels out of the vocabulary": ("LongformerForMaskedLM", dict(input_ids=TWO, labels=TWO * 0 + 97),
                                         ValueError, r"label 97 is outside \[0, 97\)"),
    "mlm labels all ignored": ("LongformerForMaskedLM", dict(input_ids=TWO, labels=TWO * 0 - 100), ValueError,
                               "every label is -100"),
    "mlm float labels": ("LongformerForMaskedLM", dict(input_ids=TWO, labels=TWO * 1.0), ValueError,
                         "labels must hold integers"),
    "class labels broadcast": ("LongformerForSequenceClassification", dict(input_ids=TWO, labels=[1]), ValueError,
                               r"labels must have shape \(2,\)"),
    "class labels too many": ("LongformerForSequenceClassification", dict(input_ids=TWO, labels=[1, 2, 0]),
                              ValueError, r"labels must have shape \(2,\)"),
    "class label out of range": ("LongformerForSequenceClassification", dict(input_ids=TWO, labels=[1, 3]),
                                 ValueError, r"label 3 is outside \[0, 3\)"),
    "multi-label targets of the wrong shape": ("LongformerForSequenceClassification",
                                               dict(input_ids=TWO, labels=np.ones((2, 2))), ValueError,
                                               r"labels must have shape \(2, 3\)"),
    "multi-label targets with NaN": ("LongformerForSequenceClassification",
                                     dict(input_ids=TWO, labels=np.full((2, 3), np.nan)), ValueError, "NaN"),
    "token labels of the wrong shape": ("LongformerForTokenClassification", dict(input_ids=TWO, labels=[[1, 2]]),
                                        ValueError, r"labels must have shape \(2, 9\)"),
    "token labels out of range": ("LongformerForTokenClassification", dict(input_ids=TWO, labels=TWO * 0 + 5),
                                  ValueError, r"label 5 is outside \[0, 3\)"),
    "qa start without end": ("LongformerForQuestionAnswering", dict(input_ids=TWO, start_positions=[1, 2]),
                             ValueError, "both start_positions and end_positions"),
    "qa positions of the wrong shape": ("LongformerForQuestionAnswering",
                                        dict(input_ids=TWO, start_positions=[1], end_positions=[2]), ValueError,
                                        r"start_positions must have shape \(2,\)"),
    "qa positions all outside": ("LongformerForQuestionAnswering",
                                 dict(input_ids=TWO, start_positions=[15, 20], end_positions=[3, 4]), ValueError,
                                 r"every one of start_positions \[15, 20\] lies outside the 9 tokens"),
    "qa float positions": ("LongformerForQuestionAnswering",
                           dict(input_ids=TWO, start_positions=[1.5, 2], end_positions=[3, 4]), ValueError,
                           "start_positions must hold integers"),
    "qa without separators": ("LongformerForQuestionAnswering", dict(input_ids=TWO * 0 + 5), ValueError,
                              "row 0 has 0 separator tokens"),
    "qa embeds without a global mask": ("LongformerForQuestionAnswering",
                                        dict(inputs_embeds=np.zeros((1, 9, 32), np.float32)), ValueError,
                                        "pass global_attention_mask"),
    "mc with 2-d ids": ("LongformerForMultipleChoice", dict(input_ids=TWO), ValueError,
                        r"\(batch, choices, sequence\)"),
    "mc labels of the wrong shape": ("LongformerForMultipleChoice", dict(input_ids=CHOICES, labels=[[0, 1]]),
                                     ValueError, r"labels must have shape \(2,\)"),
    "mc label out of range": ("LongformerForMultipleChoice", dict(input_ids=CHOICES, labels=[0, 2]), ValueError,
                              r"label 2 is outside \[0, 2\)"),
    "mc mask of the wrong shape": ("LongformerForMultipleChoice",
                                   dict(input_ids=CHOICES, attention_mask=np.ones((2, 9), int)), ValueError,
                                   r"attention_mask has shape \(2, 9\)"),
    "mc unknown keyword": ("LongformerForMultipleChoice", dict(input_ids=CHOICES, label=[0, 1]), TypeError, "label"),
    "mlm unknown keyword": ("LongformerForMaskedLM", dict(input_ids=TWO, lables=TWO), TypeError, "lables"),
}


@pytest.mark.parametrize("case", list(HEAD_CASES))
def test_head_inputs_table(heads, case):
    name, kwargs, error, message = HEAD_CASES[case]
    with pytest.raises(error, match=message):
        heads[name](**kwargs)


CONFIG_CASES = {
    "sep_token_id a string": (dict(sep_token_id="x"), "config.sep_token_id must be an integer"),
    "layer_norm_eps a string": (dict(layer_norm_eps="1e-5"), "config.layer_norm_eps must be a finite number"),
    "layer_norm_eps null": (dict(layer_norm_eps=None), "config.layer_norm_eps must be a finite number"),
    "layer_norm_eps zero": (dict(layer_norm_eps=0.0), "config.layer_norm_eps must be > 0"),
    "layer_norm_eps NaN": (dict(layer_norm_eps=float("nan")), "config.layer_norm_eps must be a finite number"),
    "pad_token_id null": (dict(pad_token_id=None), "config.pad_token_id must be an integer"),
    "pad_token_id outside the vocabulary": (dict(pad_token_id=30522), r"config.pad_token_id must be in \[0, 30522\)"),
    "id2label null": (dict(id2label=None), "config.id2label must be a non-empty object"),
    "id2label with a gap": (dict(id2label={0: "a", 2: "b"}), "number its labels 0 .. 1"),
    "id2label names not strings": (dict(id2label={0: 1}), r"config.id2label\[.?0.?\] must be a label name"),
    "id2label keys not indices": (dict(id2label={"x": "a"}), "config.id2label keys must be label indices"),
    "num_labels a string": (dict(num_labels="two"), "config.num_labels must be an integer"),
    "num_labels zero": (dict(num_labels=0), "config.num_labels must be >= 1"),
    "vocab_size a bool": (dict(vocab_size=True), "config.vocab_size must be an integer"),
    "vocab_size a float": (dict(vocab_size=10.5), "config.vocab_size must be an integer"),
    "hidden_size negative": (dict(hidden_size=-8), "config.hidden_size must be >= 1"),
    "layers zero": (dict(num_hidden_layers=0), "config.num_hidden_layers must be >= 1"),
    "heads a string": (dict(num_attention_heads="12"), "config.num_attention_heads must be an integer"),
    "dropout above one": (dict(hidden_dropout_prob=1.5), r"config.hidden_dropout_prob must lie in \[0, 1\]"),
    "initializer_range negative": (dict(initializer_range=-1.0), "config.initializer_range must be a finite"),
    "chunk_size_feed_forward negative": (dict(chunk_size_feed_forward=-4),
                                         "config.chunk_size_feed_forward must be >= 0"),
    "chunk_size_feed_forward a float": (dict(chunk_size_feed_forward=2.5),
                                        "config.chunk_size_feed_forward must be an integer"),
    "problem_type unknown": (dict(problem_type="ranking"), "config.problem_type 'ranking' is not one of"),
    "hidden_act not a string": (dict(hidden_act=3), "config.hidden_act 3 is not supported"),
    "output_attentions a string": (dict(output_attentions="yes"), "config.output_attentions must be true or false"),
    "return_dict None": (dict(return_dict=None), "config.return_dict must be true or false"),
    "architectures a string": (dict(architectures="LongformerModel"), "config.architectures must be a list"),
    "window a float": (dict(attention_window=8.0), "config.attention_window must be an int or a list of ints"),
    "window list with odd": (dict(num_hidden_layers=2, attention_window=[4, 5]), "even, positive integers"),
    "max positions below the offset": (dict(max_position_embeddings=2), "leaves no position after the offset"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_table(case):
    kwargs, message = CONFIG_CASES[case]
    with pytest.raises(ValueError, match=message):
        LongformerConfig(**kwargs)


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_json_table(case, tmp_path):
    """The same values read from a config.json: the error names the file and the field."""
    kwargs, message = CONFIG_CASES[case]
    (tmp_path / "config.json").write_text(__import__("json").dumps({"model_type": "longformer", **kwargs}))
    with pytest.raises(ValueError, match=message) as raised:
        LongformerConfig.from_pretrained(tmp_path)
    assert "config.json" in str(raised.value)


@pytest.mark.parametrize("argument, message", [
    (None, "must be a folder .* or a Hub repository name"), (b"/tmp", "got bytes"), (3, "got int"),
    ("", "empty string"), ("not a repo name!", "not a Hub repository name either"),
    ("org/never-cached-model", "not a local folder, and the Hugging Face cache .* has none of its files"),
])
def test_from_pretrained_arguments(argument, message, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    for load in (refimpl.LongformerModel.from_pretrained, LongformerConfig.from_pretrained):
        with pytest.raises(ValueError, match=message):
            load(argument, local_files_only=True)


@pytest.mark.parametrize("backend", [None, 3, 2.5, ["numba"], "NUMPY", ""])
def test_backend_arguments(checkpoint_factory, backend):
    directory, _ = checkpoint_factory("LongformerModel")
    with pytest.raises(ValueError, match="backend"):
        refimpl.LongformerModel.from_pretrained(directory, backend=backend)


def test_from_pretrained_config_argument_must_be_ours(checkpoint_factory):
    directory, theirs = checkpoint_factory("LongformerModel")
    with pytest.raises(ValueError, match="config must be a refimpl LongformerConfig, got LongformerConfig"):
        refimpl.LongformerModel.from_pretrained(directory, config=theirs.config)
    with pytest.raises(ValueError, match="config must be a refimpl LongformerConfig, got dict"):
        refimpl.LongformerModel({"hidden_size": 32})


def test_attention_mask_two_and_global_one_is_global(model, checkpoint_factory):
    """transformers merges attention_mask 2 with global_attention_mask 1 into 4, a kind its attention treats as
    neither; here a token flagged global either way is global, so all three spellings give one answer."""
    ids, mask = np.full((1, 10), 5), np.ones((1, 10), int)
    glob = np.zeros((1, 10), int)
    glob[0, 3] = 1
    as_global_mask = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    mask2 = mask + glob  # 2 on the global token
    as_attention_mask = model(ids, attention_mask=mask2).last_hidden_state
    both = model(ids, attention_mask=mask2, global_attention_mask=glob).last_hidden_state
    np.testing.assert_array_equal(as_global_mask, as_attention_mask)
    np.testing.assert_array_equal(as_global_mask, both)


@pytest.mark.parametrize("name", ["numpy", "dense"])
def test_a_huge_window_on_a_short_input_is_bounded(checkpoint_factory, name):
    """A legal window of 65536 on a 10-token input: the band is computed for min(W, N - 1), so the call takes
    well under a second and its memory is the (N x 2W+1) output, not W x 3W blocks (16 GiB before)."""
    import resource
    import time

    directory, _ = checkpoint_factory("LongformerModel")
    model = refimpl.LongformerModel.from_pretrained(directory, attention_window=65536, backend=name)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = model(np.full((1, 10), 5), output_attentions=True)
    assert time.perf_counter() - start < 1.0
    assert out.attentions[0].shape == (1, 4, 10, 65537)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"the call grew the peak resident memory by {grown_mib:.0f} MiB"
