"""The tokenizer as a drop-in for transformers 5.23's LongformerTokenizerFast: the same user-level calls, run on
both over the BPE that test_tokenizer.py trains, return the same things (keys and their order, values, python
types, array dtypes and shapes), and the public methods have transformers' parameter names, order and defaults.

Would catch: (1, N) arrays for one text, a batch without padding that raises, "max_length" padding that needs
max_length, stride windows or overflow_to_sample_mapping that differ, offsets under another key, a missing
return_* key or one in another order, encode without return_tensors, decode of a batch, pad() of a collate_fn,
a special-token property that is missing or differs, a keyword renamed or moved.
"""

from __future__ import annotations

import inspect
import json
import shutil
import warnings

import numpy as np
import pytest
from test_tokenizer import PAIRS, TEXTS, bpe_directory  # noqa: F401  (bpe_directory is a fixture)

from refimpl.io.tokenizer import LongformerTokenizer

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

MODEL_MAX_LENGTH = 16  # a known model_max_length, so padding="max_length" and truncation=True need no max_length
LONG = " ".join(TEXTS[:4])  # ~40 tokens: several windows at max_length 16
QUESTION, CONTEXT = "What does the window do?", LONG


@pytest.fixture(scope="module")
def pair_of_tokenizers(bpe_directory):  # noqa: F811
    """(ours, theirs) with model_max_length 16, without a known one, and cutting and padding on the left."""
    return {
        "known": (LongformerTokenizer.from_pretrained(bpe_directory, model_max_length=MODEL_MAX_LENGTH),
                  transformers.LongformerTokenizerFast.from_pretrained(str(bpe_directory),
                                                                       model_max_length=MODEL_MAX_LENGTH)),
        "unknown": (LongformerTokenizer.from_pretrained(bpe_directory),
                    transformers.LongformerTokenizerFast.from_pretrained(str(bpe_directory))),
        "prefix space": (LongformerTokenizer.from_pretrained(bpe_directory, add_prefix_space=True),
                         transformers.LongformerTokenizerFast.from_pretrained(str(bpe_directory),
                                                                              add_prefix_space=True)),
        "left": (LongformerTokenizer.from_pretrained(bpe_directory, padding_side="left", truncation_side="left"),
                 transformers.LongformerTokenizerFast.from_pretrained(str(bpe_directory), padding_side="left",
                                                                      truncation_side="left")),
    }


def assert_same(got, expected, where="result"):
    """`got` is what transformers returned: same keys in order, same nesting of python types, same array dtypes."""
    if isinstance(expected, transformers.BatchEncoding):
        assert list(got.keys()) == list(expected.keys()), where
        for key in expected:
            assert_same(got[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == expected.dtype and got.shape == expected.shape, where
        assert torch.equal(got, expected), where
    elif isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype and got.shape == expected.shape, where
        np.testing.assert_array_equal(got, expected, err_msg=where)
    elif isinstance(expected, (list, tuple, dict)):
        assert type(got).__name__ == type(expected).__name__ and len(got) == len(expected), \
            f"{where}: {got!r} vs {expected!r}"  # by name: CharSpan is a NamedTuple of each library
        assert getattr(got, "_fields", None) == getattr(expected, "_fields", None), where
        items = expected.items() if isinstance(expected, dict) else enumerate(expected)
        for key, value in items:
            assert_same(got[key], value, f"{where}[{key!r}]")
    else:
        assert type(got) is type(expected) and got == expected, f"{where}: {got!r} vs {expected!r}"


# name -> (which tokenizers, the call). Every call runs on ours and on transformers', and both results must agree.
CALLS = {
    # one text and batches
    "one text gives flat lists": ("unknown", lambda t: t(TEXTS[0])),
    "len of one text's ids is its token count": ("unknown", lambda t: len(t(TEXTS[0])["input_ids"])),
    "a batch without padding gives ragged lists": ("unknown", lambda t: t(TEXTS)),
    "a tuple batch": ("unknown", lambda t: t(tuple(TEXTS[:3]))),
    "pairs in a batch": ("unknown", lambda t: t([a for a, _ in PAIRS], [b for _, b in PAIRS])),
    "an empty pair of one text is dropped": ("unknown", lambda t: t("abc", "")),
    "without special tokens": ("unknown", lambda t: t(TEXTS, add_special_tokens=False)),
    # padding
    "padding=True": ("unknown", lambda t: t(TEXTS, padding=True)),
    "padding='longest'": ("unknown", lambda t: t(TEXTS, padding="longest")),
    "padding='do_not_pad'": ("unknown", lambda t: t(TEXTS, padding="do_not_pad")),
    "padding='max_length' with max_length": ("unknown", lambda t: t(TEXTS[:3], padding="max_length", max_length=40)),
    "padding='max_length' to the model max length": ("known", lambda t: t(["a", "bb"], padding="max_length")),
    "padding='max_length' with no known max length": ("unknown", lambda t: t(["a", "bb"], padding="max_length")),
    "padding='max_length', truncation=True, no max_length": (
        "known", lambda t: t(TEXTS, padding="max_length", truncation=True)),
    "pad_to_multiple_of with padding=True": ("unknown", lambda t: t(TEXTS, padding=True, pad_to_multiple_of=8)),
    "pad_to_multiple_of of one text": ("unknown", lambda t: t(TEXTS[0], padding=True, pad_to_multiple_of=32)),
    "pad_to_multiple_of with max_length": (
        "unknown", lambda t: t(TEXTS[:2], padding="max_length", max_length=20, pad_to_multiple_of=8)),
    "pad_to_multiple_of with truncation to a multiple": (
        "unknown", lambda t: t(TEXTS, padding=True, truncation=True, max_length=8, pad_to_multiple_of=4)),
    "padding on the left": ("unknown", lambda t: t(TEXTS[:3], padding=True, padding_side="left")),
    # max_length without truncation, as transformers 5.23
    "max_length alone truncates": ("unknown", lambda t: t(TEXTS, max_length=6)),
    "max_length with truncation=False is ignored": ("unknown", lambda t: t(TEXTS[0], max_length=4, truncation=False)),
    "max_length with padding=True is ignored": ("unknown", lambda t: t(TEXTS[:2], max_length=4, padding=True)),
    "truncation=True with no known max length": ("unknown", lambda t: t(TEXTS[0], truncation=True)),
    "truncation=True to the model max length": ("known", lambda t: t(TEXTS, truncation=True)),
    # truncation strategies
    **{f"pairs, truncation={s!r}": ("unknown", lambda t, s=s: t(
        [QUESTION, CONTEXT], [CONTEXT, QUESTION], truncation=s, max_length=24, padding=True))
       for s in (True, "longest_first")},
    "only_first": ("unknown", lambda t: t([CONTEXT], [QUESTION], truncation="only_first", max_length=20)),
    "only_second": ("unknown", lambda t: t(QUESTION, CONTEXT, truncation="only_second", max_length=20)),
    "do_not_truncate": ("unknown", lambda t: t(TEXTS[0], truncation="do_not_truncate")),
    "a tokenizer that cuts and pads on the left": ("left", lambda t: t(TEXTS[:3], max_length=6, padding="max_length",
                                                                       truncation=True)),
    "left windows": ("left", lambda t: t(LONG, truncation=True, max_length=10, stride=2,
                                         return_overflowing_tokens=True, padding=True)),
    # long-document QA chunking
    "stride windows of one text": ("unknown", lambda t: t(
        LONG, truncation=True, max_length=12, stride=3, return_overflowing_tokens=True)),
    "stride windows of a batch, padded, with offsets": ("unknown", lambda t: t(
        [LONG, TEXTS[1]], truncation=True, max_length=12, stride=2, return_overflowing_tokens=True, padding=True,
        return_offsets_mapping=True)),
    "question + context windows (only_second)": ("unknown", lambda t: t(
        [QUESTION, "Who?"], [CONTEXT, CONTEXT], truncation="only_second", max_length=24, stride=4,
        return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")),
    "windows as arrays": ("unknown", lambda t: t(
        [LONG, TEXTS[2]], truncation=True, max_length=10, stride=2, return_overflowing_tokens=True,
        padding="max_length", return_tensors="np")),
    "windows as torch tensors": ("unknown", lambda t: t(
        LONG, truncation=True, max_length=10, stride=2, return_overflowing_tokens=True, padding=True,
        return_tensors="pt")),
    # what comes back
    "every return_* at once": ("unknown", lambda t: t(
        TEXTS[:3], padding=True, return_token_type_ids=True, return_special_tokens_mask=True,
        return_offsets_mapping=True, return_length=True)),
    "every return_* of a pair": ("unknown", lambda t: t(
        "Café 🙂", " naïve 東京", return_token_type_ids=True, return_special_tokens_mask=True,
        return_offsets_mapping=True, return_length=True)),
    "no attention mask": ("unknown", lambda t: t(TEXTS[:2], padding=True, return_attention_mask=False)),
    "return_length of one text": ("unknown", lambda t: t(TEXTS[0], return_length=True)),
    "every return_* as arrays": ("unknown", lambda t: t(
        TEXTS, padding=True, return_special_tokens_mask=True, return_offsets_mapping=True, return_length=True,
        return_token_type_ids=True, return_tensors="np")),
    "one text as arrays": ("unknown", lambda t: t(TEXTS[0], return_tensors="np", return_offsets_mapping=True)),
    "one text as torch tensors": ("unknown", lambda t: t(TEXTS[0], return_tensors="pt")),
    "a batch as torch tensors": ("unknown", lambda t: t(TEXTS, padding=True, return_tensors="pt")),
    "words, is_split_into_words": ("unknown", lambda t: t(
        ["Longformer", "scales", "linearly"], is_split_into_words=True, return_offsets_mapping=True)),
    "words with add_prefix_space, as RoBERTa wants them": ("prefix space", lambda t: t(
        [["Longformer", "scales"], ["a", "window"]], is_split_into_words=True, return_offsets_mapping=True,
        padding=True)),
    "a text with add_prefix_space": ("prefix space", lambda t: t(TEXTS[:3], return_offsets_mapping=True)),
    "a batch of words": ("unknown", lambda t: t([["a", "window"], ["global", "attention", "here"]],
                                                is_split_into_words=True, padding=True)),
    "text_target gives labels": ("unknown", lambda t: t(TEXTS[:2], text_target=TEXTS[2:4])),
    "text_target alone": ("unknown", lambda t: t(text_target=TEXTS[0])),
    "tokenizer_kwargs": ("unknown", lambda t: t(TEXTS, tokenizer_kwargs={"padding": True, "max_length": 5,
                                                                         "truncation": True})),
    "tokenizer_kwargs override the arguments": ("unknown", lambda t: t(
        TEXTS[:2], padding="longest", return_length=True, tokenizer_kwargs={"padding": False, "return_length": False})),
    "split_special_tokens": ("unknown", lambda t: t(TEXTS[-1], split_special_tokens=True)),
    # encode
    "encode": ("unknown", lambda t: t.encode(TEXTS[3])),
    "encode a pair": ("unknown", lambda t: t.encode(*PAIRS[0])),
    "encode a list is a batch": ("unknown", lambda t: t.encode(["a list"])),
    "encode return_tensors='np'": ("unknown", lambda t: t.encode(TEXTS[0], return_tensors="np")),
    "encode return_tensors='pt'": ("unknown", lambda t: t.encode(TEXTS[0], return_tensors="pt")),
    "encode with truncation and padding": ("unknown", lambda t: t.encode(
        TEXTS[0], truncation=True, max_length=6, padding="max_length")),
    "encode without special tokens": ("unknown", lambda t: t.encode(TEXTS[4], add_special_tokens=False)),
    # tokens and the vocabulary
    "tokenize": ("unknown", lambda t: t.tokenize(TEXTS[2])),
    "tokenize a pair": ("unknown", lambda t: t.tokenize(*PAIRS[0])),
    "tokenize a pair with special tokens": ("unknown", lambda t: t.tokenize(*PAIRS[3], add_special_tokens=True)),
    "get_vocab": ("unknown", lambda t: t.get_vocab()),
    "vocab_size and len": ("unknown", lambda t: (t.vocab_size, len(t))),
    "convert_tokens_to_ids": ("unknown", lambda t: t.convert_tokens_to_ids(t.tokenize(TEXTS[3]) + ["<mask>"])),
    "convert_ids_to_tokens": ("unknown", lambda t: t.convert_ids_to_tokens(t.encode(TEXTS[4]))),
    "convert_ids_to_tokens of an array": ("unknown", lambda t: t.convert_ids_to_tokens(
        np.asarray(t.encode(TEXTS[4])), skip_special_tokens=True)),
    "convert_tokens_to_string": ("unknown", lambda t: t.convert_tokens_to_string(t.tokenize(TEXTS[4]))),
    "num_special_tokens_to_add": ("unknown", lambda t: (t.num_special_tokens_to_add(),
                                                        t.num_special_tokens_to_add(pair=True))),
    "special token strings": ("unknown", lambda t: [getattr(t, f"{r}_token") for r in (
        "bos", "eos", "unk", "sep", "pad", "cls", "mask")]),
    "special token ids": ("unknown", lambda t: [getattr(t, f"{r}_token_id") for r in (
        "bos", "eos", "unk", "sep", "pad", "cls", "mask")]),
    "all_special_tokens and ids": ("unknown", lambda t: (t.all_special_tokens, t.all_special_ids)),
    "special_tokens_map": ("unknown", lambda t: t.special_tokens_map),
    "model_input_names, sides, max length": ("known", lambda t: (
        t.model_input_names, t.padding_side, t.truncation_side, t.model_max_length, t.pad_token_type_id)),
    "unknown model_max_length": ("unknown", lambda t: t.model_max_length),
    # decode
    "decode": ("unknown", lambda t: t.decode(t.encode(TEXTS[4]))),
    "decode skipping special tokens": ("unknown", lambda t: t.decode(t.encode(TEXTS[8]), skip_special_tokens=True)),
    "decode one id": ("unknown", lambda t: t.decode(t.encode("word")[1])),
    "decode a (B, N) array gives a list": ("unknown", lambda t: t.decode(
        t(TEXTS[:3], padding=True, return_tensors="np")["input_ids"], skip_special_tokens=True)),
    "decode a torch row": ("unknown", lambda t: t.decode(t(TEXTS[3], return_tensors="pt")["input_ids"][0])),
    "decode an empty list": ("unknown", lambda t: t.decode([])),
    "batch_decode": ("unknown", lambda t: t.batch_decode(t(TEXTS, padding=True)["input_ids"],
                                                         skip_special_tokens=True)),
    "batch_decode of one sequence": ("unknown", lambda t: t.batch_decode(t.encode(TEXTS[0]))),
    # pad(), as a collate_fn does it
    "pad a list of dicts": ("unknown", lambda t: t.pad([t(s) for s in TEXTS[:3]])),
    "pad a dict of lists": ("unknown", lambda t: t.pad({"input_ids": t(TEXTS[:3])["input_ids"]})),
    "pad to max_length and a multiple": ("unknown", lambda t: t.pad(
        [t(s, return_special_tokens_mask=True) for s in TEXTS[:3]], padding="max_length", max_length=22,
        pad_to_multiple_of=8)),
    "pad on the left, as arrays": ("unknown", lambda t: t.pad([t(s) for s in TEXTS[:2]], padding_side="left",
                                                              return_tensors="np")),
    "pad arrays stays arrays": ("unknown", lambda t: t.pad(
        [{"input_ids": np.asarray(t.encode(s))} for s in TEXTS[:2]])),
    "pad to torch": ("unknown", lambda t: t.pad([t(s) for s in TEXTS[:2]], return_tensors="pt")),
    "pad one sequence": ("unknown", lambda t: t.pad({"input_ids": t.encode("a")}, padding="max_length",
                                                    max_length=6)),
    "pad without attention mask": ("unknown", lambda t: t.pad({"input_ids": [t.encode(s) for s in TEXTS[:2]]},
                                                              return_attention_mask=False)),
    # the BatchEncoding
    "keys, items, attribute access": ("unknown", lambda t: (
        list(t(TEXTS[0]).keys()), t(TEXTS[0]).input_ids, dict(t(TEXTS[0]).items()))),
    "word_ids, tokens, sequence_ids": ("unknown", lambda t: [
        (e.word_ids(i), e.tokens(i), e.sequence_ids(i)) for e in [t(*PAIRS[0]), t(TEXTS[:3])] for i in range(
            len(e["input_ids"]) if isinstance(e["input_ids"][0], list) else 1)]),
    "word_ids of one text": ("unknown", lambda t: t(TEXTS[2]).word_ids()),
    "char_to_token and token_to_chars": ("unknown", lambda t: (
        [t(TEXTS[3]).char_to_token(c) for c in range(len(TEXTS[3]))],
        [t(TEXTS[:2]).char_to_token(1, c) for c in range(0, len(TEXTS[1]), 3)],
        [t(*PAIRS[0]).char_to_token(c, sequence_index=1) for c in range(len(PAIRS[0][1]))],
        [t(TEXTS[3]).token_to_chars(i) for i in range(1, 5)], t(TEXTS[:2]).token_to_chars(1, 2))),
    "the Encoding of a row": ("unknown", lambda t: [(e.ids, e.offsets) for e in [t(TEXTS[:2])[1]]]),
    "n_sequences": ("unknown", lambda t: (t(TEXTS[0]).n_sequences, t(*PAIRS[0]).n_sequences)),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_the_same_call_returns_the_same(pair_of_tokenizers, name):
    """Each call of CALLS on refimpl returns what it returns on transformers (names, order, types, values)."""
    which, call = CALLS[name]
    ours, theirs = pair_of_tokenizers[which]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ours says more than transformers where it skips what was asked
        expected = call(theirs)
        got = call(ours)
    assert_same(got, expected, name)


def test_add_prefix_space_reaches_a_tokenizer_json(pair_of_tokenizers, tmp_path):
    """Catches add_prefix_space applied on the vocab.json route only: transformers rebuilds Roberta's steps from a
    tokenizer.json too."""
    _, theirs = pair_of_tokenizers["unknown"]
    theirs.save_pretrained(str(tmp_path))
    ours = LongformerTokenizer.from_pretrained(tmp_path, add_prefix_space=True)
    theirs = transformers.LongformerTokenizerFast.from_pretrained(str(tmp_path), add_prefix_space=True)
    for call in (lambda t: t(TEXTS[:3], return_offsets_mapping=True),
                 lambda t: t([["Hello", "world"]], is_split_into_words=True, return_offsets_mapping=True)):
        assert_same(call(ours), call(theirs))
    ours.save_pretrained(tmp_path / "again")
    assert LongformerTokenizer.from_pretrained(tmp_path / "again").encode("Hello") == theirs.encode("Hello")


def test_added_tokens_json_is_read(bpe_directory, tmp_path):  # noqa: F811
    """Catches an older checkpoint's added_tokens.json fetched but ignored: transformers adds its tokens."""
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(bpe_directory / name, tmp_path / name)
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<ent>": 700, "<rel>": 701}))
    ours = LongformerTokenizer.from_pretrained(tmp_path)
    theirs = transformers.LongformerTokenizerFast.from_pretrained(str(tmp_path))
    for call in (lambda t: t(["a <ent> b<rel>", TEXTS[0]], padding=True), lambda t: len(t),
                 lambda t: t.decode(t.encode("x <ent> y<rel>"), skip_special_tokens=True), lambda t: t.get_vocab()):
        assert_same(call(ours), call(theirs))


def test_the_batch_encoding_reads_as_transformers(pair_of_tokenizers):
    """Catches a BatchEncoding that is not a mapping model(**enc) can unpack, or that loses its keys as attributes."""
    ours, theirs = pair_of_tokenizers["unknown"]
    got, expected = ours(TEXTS[:2], padding=True, return_tensors="np"), theirs(TEXTS[:2], padding=True,
                                                                               return_tensors="np")

    def unpack(**kwargs):
        return list(kwargs)

    assert unpack(**got) == unpack(**expected) == ["input_ids", "attention_mask"]
    assert got.attention_mask is got["attention_mask"]
    with pytest.raises(AttributeError):
        got.no_such_key
    assert got.is_fast and len(got.encodings) == 2
    assert [e.ids for e in got[0:2]] == [e.ids for e in expected[0:2]]
    assert "input_ids" in got and len(got) == len(expected)


def test_pad_keeps_a_given_mask_aligned(pair_of_tokenizers):
    """Catches the one deliberate difference of pad(): with return_attention_mask=False transformers leaves a mask
    it was given unpadded, shorter than its input_ids; ours pads it with the ids."""
    ours, _ = pair_of_tokenizers["unknown"]
    padded = ours.pad([ours(s) for s in TEXTS[:2]], return_attention_mask=False)
    assert [len(m) for m in padded["attention_mask"]] == [len(i) for i in padded["input_ids"]]


def test_max_length_alone_warns_as_transformers_does(pair_of_tokenizers):
    """Catches padding=True with max_length silently ignoring max_length (transformers warns, and so must we)."""
    ours, _ = pair_of_tokenizers["unknown"]
    with pytest.warns(UserWarning, match="max_length=4 is ignored"):
        ours(TEXTS[:2], max_length=4, padding=True)
    with pytest.warns(UserWarning, match="padding='max_length' is skipped"):
        ours("a", padding="max_length")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verbose=False silences them, as in transformers
        ours(TEXTS[:2], max_length=4, padding=True, verbose=False)


# ----- signatures: names, positional order and defaults as the pinned transformers -----


def parameters(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL, p.KEYWORD_ONLY)]


METHODS = ["__call__", "encode", "decode", "batch_decode", "tokenize", "pad", "convert_ids_to_tokens",
           "convert_tokens_to_ids", "convert_tokens_to_string", "get_vocab", "num_special_tokens_to_add",
           "from_pretrained"]


@pytest.mark.parametrize("name", METHODS)
def test_signatures_are_transformers(name):
    """Same positional parameters, in the same order, with the same defaults (keyword-only extras allowed); our
    keyword-only parameters that transformers takes through **kwargs or after *args have its defaults too."""
    ours, theirs = getattr(LongformerTokenizer, name), getattr(transformers.LongformerTokenizerFast, name)
    assert parameters(ours) == parameters(theirs)
    their_keywords = {p.name: p.default for p in inspect.signature(theirs).parameters.values()
                      if p.kind == p.KEYWORD_ONLY}
    for p in inspect.signature(ours).parameters.values():
        if p.kind == p.KEYWORD_ONLY and p.name in their_keywords:
            assert p.default == their_keywords[p.name], p.name


def test_save_pretrained_takes_the_folder_first():
    """save_pretrained(folder) works as in transformers; its other keywords (push_to_hub, ...) are not provided."""
    assert parameters(LongformerTokenizer.save_pretrained)[0][0] == \
        parameters(transformers.LongformerTokenizerFast.save_pretrained)[0][0] == "save_directory"
