"""refimpl as a drop-in for transformers' Longformer: the same user-level calls, run on both, return the same
things (names, positional order, defaults, return types, values). The tokenizer's calls are in
tests/refimpl/io/test_tokenizer*.py; checkpoints of every dtype in tests/refimpl/io/test_checkpoint*.py.

Would catch: a parameter renamed or moved (LongformerForMultipleChoice takes token_type_ids second), an output that
is not indexable as transformers' ModelOutput is, a config default that differs, new weights not initialised as
transformers initialises them, a head loaded from a base checkpoint without a warning, a save that transformers
cannot load.
"""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pytest
from conftest import HIDDEN_ATOL, HIDDEN_RTOL, SMALL, assert_close, qa_ids, random_inputs

import refimpl
from refimpl.outputs import ModelOutput

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CLASSES = ["LongformerModel", "LongformerForMaskedLM", "LongformerForSequenceClassification",
           "LongformerForTokenClassification", "LongformerForQuestionAnswering", "LongformerForMultipleChoice"]


def parameters(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL, p.KEYWORD_ONLY)]


@pytest.mark.parametrize("name", CLASSES)
def test_forward_signatures_are_transformers(name):
    """Same parameter names, order and defaults as the pinned transformers (keyword-only extras allowed)."""
    assert parameters(getattr(refimpl, name).forward) == parameters(getattr(transformers, name).forward)


def test_the_output_classes_of_the_seed_document_exist():
    import refimpl.outputs as ours
    from transformers.models.longformer import modeling_longformer as theirs

    for name in ("LongformerBaseModelOutput", "LongformerBaseModelOutputWithPooling", "LongformerMaskedLMOutput",
                 "LongformerQuestionAnsweringModelOutput", "LongformerSequenceClassifierOutput",
                 "LongformerMultipleChoiceModelOutput", "LongformerTokenClassifierOutput"):
        assert [f for f in getattr(theirs, name).__dataclass_fields__] == \
            [f for f in getattr(ours, name).__dataclass_fields__], name


def test_config_defaults_are_transformers():
    ours, theirs = refimpl.LongformerConfig(), transformers.LongformerConfig()
    for field in ours.to_dict():
        if field in ("extra", "id2label", "label2id") or not hasattr(theirs, field):
            continue
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.num_labels == theirs.num_labels == 2
    assert ours.model_type == theirs.model_type == "longformer"


def test_config_calls():
    cfg = refimpl.LongformerConfig(num_labels=3)
    assert cfg.num_labels == 3 and cfg.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    cfg.num_labels = 5
    assert cfg.label2id == transformers.LongformerConfig(num_labels=5).label2id
    assert json.loads(cfg.to_json_string())["id2label"]["4"] == "LABEL_4"
    with pytest.raises(TypeError, match="attention_windw"):
        refimpl.LongformerConfig(attention_windw=8)


def test_config_from_pretrained_with_overrides(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerModel")
    cfg = refimpl.LongformerConfig.from_pretrained(directory, attention_window=32)
    assert cfg.attention_window == 32
    assert cfg.to_dict() == {**refimpl.LongformerConfig.from_pretrained(directory).to_dict(), "attention_window": 32}
    with pytest.raises(TypeError, match="attention_windw"):
        refimpl.LongformerConfig.from_pretrained(directory, attention_windw=8)
    with pytest.raises(TypeError, match="attention_windw"):
        refimpl.LongformerModel.from_pretrained(directory, attention_windw=8)


def run_both(name, checkpoint_factory, **call):
    directory, theirs = checkpoint_factory(name)
    ours = getattr(refimpl, name).from_pretrained(directory)
    with torch.no_grad():
        expected = theirs(**{k: torch.from_numpy(np.asarray(v)) for k, v in call.items()})
    return ours, ours(**call), expected


def test_outputs_index_like_model_output(checkpoint_factory):
    ids, mask, glob = random_inputs(np.random.default_rng(0), 2, 21, n_global={0: 1})
    model, out, expected = run_both("LongformerModel", checkpoint_factory, input_ids=ids, attention_mask=mask,
                                    global_attention_mask=glob)
    assert isinstance(out, ModelOutput)
    assert list(out.keys()) == list(expected.keys()) == ["last_hidden_state", "pooler_output"]
    assert_close(out[0], expected[0].numpy(), what="out[0]")
    assert_close(out["pooler_output"], expected["pooler_output"].numpy(), what="out['pooler_output']")
    assert len(out.to_tuple()) == len(expected.to_tuple()) == 2
    tuple_out = model(ids, mask, glob, return_dict=False)
    assert isinstance(tuple_out, tuple) and len(tuple_out) == 2
    assert_close(tuple_out[1], expected.pooler_output.numpy(), what="return_dict=False")
    full = model(ids, mask, glob, output_attentions=True, output_hidden_states=True)
    with torch.no_grad():
        theirs = checkpoint_factory("LongformerModel")[1](torch.from_numpy(ids), torch.from_numpy(mask),
                                                         torch.from_numpy(glob), output_attentions=True,
                                                         output_hidden_states=True)
    assert list(full.keys()) == list(theirs.keys())
    with pytest.raises(KeyError):
        out["attentions"]  # None fields are not keys, as in transformers


def test_multiple_choice_takes_token_type_ids_second(checkpoint_factory):
    rng = np.random.default_rng(1)
    ids = np.stack([qa_ids(rng, 3, 4, 9) for _ in range(2)])  # (B=2, K=3, N)
    mask = np.ones_like(ids)
    mask[0, 1, -2:] = 0
    types = np.zeros_like(ids)
    directory, theirs = checkpoint_factory("LongformerForMultipleChoice")
    ours = refimpl.LongformerForMultipleChoice.from_pretrained(directory)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(ids), torch.from_numpy(types), torch.from_numpy(mask)).logits.numpy()
    assert_close(ours(ids, types, mask).logits, expected, what="positional (input_ids, token_type_ids, mask)")


def test_inputs_embeds_equal_input_ids(checkpoint_factory):
    ids, mask, glob = random_inputs(np.random.default_rng(2), 1, 17, n_global={0: 2})
    directory, theirs = checkpoint_factory("LongformerModel")
    ours = refimpl.LongformerModel.from_pretrained(directory)
    embeds = ours.get_input_embeddings()[ids]
    with torch.no_grad():
        expected = theirs(inputs_embeds=torch.from_numpy(embeds), attention_mask=torch.from_numpy(mask),
                          global_attention_mask=torch.from_numpy(glob)).last_hidden_state.numpy()
    assert_close(ours(inputs_embeds=embeds, attention_mask=mask, global_attention_mask=glob).last_hidden_state,
                 expected, what="inputs_embeds")
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        ours(ids, inputs_embeds=embeds)


def test_config_fields_set_the_forward_defaults(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerModel")
    model = refimpl.LongformerModel.from_pretrained(directory, output_hidden_states=True)
    ids = np.random.default_rng(3).integers(3, 97, size=(1, 9))
    assert len(model(ids).hidden_states) == SMALL["num_hidden_layers"] + 1
    assert model(ids, output_hidden_states=False).hidden_states is None
    cfg = refimpl.LongformerConfig.from_pretrained(directory, return_dict=False)
    assert isinstance(refimpl.LongformerModel.from_pretrained(directory, config=cfg)(ids), tuple)


def test_new_models_are_initialised_as_transformers_does():
    cfg = refimpl.LongformerConfig(**SMALL)
    model = refimpl.LongformerForMaskedLM(cfg, seed=3)
    theirs = transformers.LongformerForMaskedLM(transformers.LongformerConfig(**SMALL))
    assert model.num_parameters() == theirs.num_parameters()
    p = model.params
    word = p["embeddings.word_embeddings.weight"]
    assert abs(word.std() - cfg.initializer_range) < 0.1 * cfg.initializer_range
    assert not word[cfg.pad_token_id].any() and not p["embeddings.position_embeddings.weight"][cfg.pad_token_id].any()
    assert (p["encoder.layer.0.output.LayerNorm.weight"] == 1).all()
    assert not p["encoder.layer.0.attention.self.query.bias"].any() and not p["lm_head.bias"].any()
    assert p["lm_head.decoder.weight"] is word  # tied
    same = refimpl.LongformerForMaskedLM(cfg, seed=3).params["encoder.layer.1.intermediate.dense.weight"]
    np.testing.assert_array_equal(same, p["encoder.layer.1.intermediate.dense.weight"])
    assert model.eval() is model and model.get_input_embeddings().shape == (SMALL["vocab_size"], SMALL["hidden_size"])


@pytest.mark.parametrize("name", CLASSES)
def test_save_pretrained_round_trips_through_transformers(name, tmp_path):
    """A model made here and saved loads in transformers, which computes the same numbers."""
    cfg = refimpl.LongformerConfig(**SMALL, num_labels=2)
    ours = getattr(refimpl, name)(cfg, seed=0)
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == [name] and saved["model_type"] == "longformer"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(transformers, name).from_pretrained(tmp_path).eval()
    rng = np.random.default_rng(4)
    ids = qa_ids(rng, 2, 3, 12)
    if name == "LongformerForMultipleChoice":
        ids = np.stack([ids, ids[::-1]])
    with torch.no_grad():
        expected = theirs(torch.from_numpy(ids))
    actual = ours(ids)
    for key in expected.keys():
        assert_close(actual[key], expected[key].numpy(), atol=HIDDEN_ATOL, rtol=HIDDEN_RTOL, what=f"{name}.{key}")


def test_a_head_from_a_base_checkpoint_gets_new_weights_and_a_warning(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerModel")
    with pytest.warns(UserWarning, match=r"newly initialized: \['classifier.dense.weight'"):
        model = refimpl.LongformerForSequenceClassification.from_pretrained(directory, num_labels=4)
    ids = np.random.default_rng(5).integers(3, 97, size=(3, 11))
    assert model(ids).logits.shape == (3, 4)
    with pytest.warns(UserWarning, match=r"newly initialized: \['lm_head.dense.weight'.*'lm_head.bias'\]"):
        mlm = refimpl.LongformerForMaskedLM.from_pretrained(directory)
    assert not mlm.params["lm_head.bias"].any()  # a new bias is 0; the decoder is the word table
    assert mlm.params["lm_head.decoder.weight"] is mlm.params["embeddings.word_embeddings.weight"]
    head_dir, _ = checkpoint_factory("LongformerForTokenClassification")
    with pytest.warns(UserWarning, match="unused by this model"):
        refimpl.LongformerModel.from_pretrained(head_dir)  # and a head checkpoint into a base model still loads


def test_the_seed_documents_training_snippet_runs(tmp_path):
    """transformers' Longformer page, as written (return_tensors='np' for 'pt'):
        input_ids = tokenizer.encode('This is a sentence from [MASK] training data', return_tensors='pt')
        mlm_labels = tokenizer.encode('This is a sentence from the training data', return_tensors='pt')
        loss = model(input_ids, labels=input_ids, masked_lm_labels=mlm_labels)[0]
    The checkpoint's tokenizer names its mask token [MASK] (taking the space before it, as RoBERTa's <mask> does),
    so both texts have the same length."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    text = "This is a sentence from the training data. " * 20
    bpe.train_from_iterator([text], vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "[MASK]"],
                            show_progress=False)
    bpe.save_model(str(tmp_path))
    mask = {"content": "[MASK]", "lstrip": True, "rstrip": False, "normalized": False, "single_word": False}
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"mask_token": mask}))  # as RoBERTa's <mask>
    cfg = refimpl.LongformerConfig(**{**SMALL, "vocab_size": bpe.get_vocab_size()})
    refimpl.LongformerForMaskedLM(cfg, seed=0).save_pretrained(tmp_path)
    tokenizer = refimpl.LongformerTokenizer.from_pretrained(tmp_path)
    model = refimpl.LongformerForMaskedLM.from_pretrained(tmp_path)

    input_ids = tokenizer.encode('This is a sentence from [MASK] training data', return_tensors='np')
    mlm_labels = tokenizer.encode('This is a sentence from the training data', return_tensors='np')
    with pytest.warns(FutureWarning, match="masked_lm_labels"):
        loss = model(input_ids, labels=input_ids, masked_lm_labels=mlm_labels)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.LongformerForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = theirs(torch.from_numpy(input_ids), labels=torch.from_numpy(mlm_labels)).loss.item()
    assert np.ndim(loss) == 0 and abs(float(loss) - expected) < 1e-5 * max(1, abs(expected))
