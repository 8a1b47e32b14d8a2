"""Every bad input to the tokenizer is a clear error: a ValueError that names the argument (or the file) and what is
allowed, a TypeError for an unknown keyword, as Python's own. Never a crash of another type (tokenizers'
OverflowError, a bare Exception, an IndexError), a hang, or a silently wrong result.

One table of calls, one table of broken folders, and a hypothesis property over random valid and invalid calls.
Would catch: an argument that reaches tokenizers unchecked, a message that misreports the value (a uint64 id above
2**63 printed negative), a config file of the wrong shape loaded as if it were right, a file named wrongly or not
at all in its error.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from test_tokenizer import TEXTS, bpe_directory  # noqa: F401  (bpe_directory is a fixture)

from refimpl.io.tokenizer import BatchEncoding, LongformerTokenizer

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LONG = " ".join(TEXTS)


@pytest.fixture(scope="module")
def tok(bpe_directory):  # noqa: F811
    return LongformerTokenizer.from_pretrained(bpe_directory)


# (what is wrong, the call, the exception, what its message must say)
CALLS = [
    # texts
    ("a number for text", lambda t: t(42), ValueError, "text must be a str or a list of str, got int"),
    ("None in a batch", lambda t: t(["fine", None]), ValueError, r"text\[1\] must be a str, got NoneType"),
    ("an empty batch", lambda t: t([]), ValueError, "text is an empty list"),
    ("no text at all", lambda t: t(), ValueError, "pass text"),
    ("text None", lambda t: t(None, "pair"), ValueError, "pass text"),
    ("a list pair for one text", lambda t: t("a", text_pair=["b"]), ValueError, r"text_pair \(with one text"),
    ("a pair list too short", lambda t: t(["a", "b"], text_pair=["c"]), ValueError,
     "text_pair must be a list of 2 texts"),
    ("a str pair for a batch", lambda t: t(["a", "b"], "c"), ValueError, "text_pair must be a list of 2"),
    ("a number in a pair batch", lambda t: t(["a"], [3]), ValueError, r"text_pair\[0\] must be a str, got int"),
    ("bytes to encode", lambda t: t.encode(b"bytes"), ValueError, "text must be a str or a list of str, got bytes"),
    ("bytes to tokenize", lambda t: t.tokenize(b"bytes"), ValueError, "got bytes"),
    ("a lone surrogate", lambda t: t("a\ud800b"), ValueError, r"text holds '\\ud800' at character 1, a lone surr"),
    ("a lone surrogate in a batch", lambda t: t(["ok", "x\udfff"]), ValueError, r"text\[1\] holds '\\udfff'"),
    ("a lone surrogate in a pair", lambda t: t("a", "b\ud800"), ValueError, "text_pair.*lone surrogate"),
    ("a lone surrogate in a word", lambda t: t(["ok", "\ud800"], is_split_into_words=True), ValueError,
     r"text\[1\] holds"),
    ("a str with is_split_into_words", lambda t: t("a", is_split_into_words=True), ValueError,
     "text must be a list of words"),
    ("a number among words", lambda t: t([["a", 3]], is_split_into_words=True), ValueError,
     r"text\[0\]\[1\] must be a str"),
    # padding and truncation
    ("padding='left'", lambda t: t("a", padding="left"), ValueError,
     r"padding='left' is not allowed: padding must be one of \(True, False, 'longest'"),
    ("padding=1", lambda t: t("a", padding=1), ValueError, "padding=1 is not allowed"),
    ("padding=None", lambda t: t("a", padding=None), ValueError, "padding=None is not allowed"),
    ("truncation='only_third'", lambda t: t("a", truncation="only_third", max_length=4), ValueError,
     r"truncation='only_third' is not allowed: truncation must be one of"),
    ("truncation=1", lambda t: t("a", truncation=1), ValueError, "truncation=1 is not allowed"),
    ("max_length=0", lambda t: t("a", truncation=True, max_length=0), ValueError,
     "max_length=0 is not allowed: max_length must be a positive int"),
    ("max_length=-3", lambda t: t("a", truncation=True, max_length=-3), ValueError, "max_length=-3 is not allowed"),
    ("max_length=2.5", lambda t: t("a", truncation=True, max_length=2.5), ValueError, "max_length=2.5 is not"),
    ("max_length='8'", lambda t: t("a", max_length="8"), ValueError, "max_length='8' is not allowed"),
    ("max_length=True", lambda t: t("a", max_length=True), ValueError, "max_length=True is not allowed"),
    ("max_length beyond u32", lambda t: t("a", max_length=2**40), ValueError, "max_length=1099511627776 is not"),
    ("padding to a huge max_length", lambda t: t("a", padding="max_length", max_length=2**30), ValueError,
     "padding='max_length' to 1073741824 tokens a row is more than the 1048576 allowed"),
    ("max_length shorter than the specials", lambda t: t("a b c", truncation=True, max_length=1), ValueError,
     "max_length=1 is shorter than the 2 special tokens"),
    ("max_length shorter than a pair's specials", lambda t: t("a b", "c d", truncation=True, max_length=3),
     ValueError, "max_length=3 is shorter than the 4 special tokens"),
    ("only_second without a pair", lambda t: t("a b c d e", truncation="only_second", max_length=4), ValueError,
     "cannot encode with truncation='only_second'.*Second sequence not provided"),
    ("only_first too short to cut", lambda t: t("a", LONG, truncation="only_first", max_length=8), ValueError,
     "cannot encode with truncation='only_first'.*too short"),
    ("stride=-1", lambda t: t("a", truncation=True, max_length=4, stride=-1), ValueError,
     "stride=-1 is not allowed: stride must be an int from 0"),
    ("stride=1.5", lambda t: t("a", truncation=True, max_length=4, stride=1.5), ValueError, "stride=1.5 is not"),
    ("stride as long as the window", lambda t: t(LONG, truncation=True, max_length=5, stride=4,
                                                 return_overflowing_tokens=True), ValueError,
     "stride=4.*greater than or equal to its effective max length of 3"),
    ("pad_to_multiple_of=0", lambda t: t("a", padding=True, pad_to_multiple_of=0), ValueError,
     "pad_to_multiple_of=0 is not allowed"),
    ("pad_to_multiple_of huge", lambda t: t("a", padding=True, pad_to_multiple_of=2**30), ValueError,
     "pad_to_multiple_of=1073741824 is not allowed"),
    ("truncation not a multiple", lambda t: t("a", padding=True, truncation=True, max_length=6,
                                              pad_to_multiple_of=4), ValueError,
     "max_length=6 with padding to a multiple of pad_to_multiple_of=4: max_length must be a multiple"),
    ("padding_side='center'", lambda t: t("a", padding=True, padding_side="center"), ValueError,
     "padding_side='center' is not allowed: padding_side must be 'right', 'left' or None"),
    # what comes back
    ("return_tensors='tf'", lambda t: t("a", return_tensors="tf"), ValueError,
     r"return_tensors='tf' is not allowed: return_tensors must be one of \(None, 'np', 'pt'\)"),
    ("return_tensors=np", lambda t: t("a", return_tensors=np), ValueError, "return_tensors=<module 'numpy'"),
    ("a ragged batch as arrays", lambda t: t(["short", LONG], return_tensors="np"), ValueError,
     r"input_ids of different lengths \[\d+, \d+\].*pass padding=True"),
    ("return_offsets_mapping='yes'", lambda t: t("a", return_offsets_mapping="yes"), ValueError,
     "return_offsets_mapping='yes' is not allowed: return_offsets_mapping must be True or False"),
    ("return_attention_mask=1", lambda t: t("a", return_attention_mask=1), ValueError,
     "return_attention_mask=1 is not allowed: .* True, False or None"),
    ("add_special_tokens=None", lambda t: t("a", add_special_tokens=None), ValueError,
     "add_special_tokens=None is not allowed"),
    ("is_split_into_words='no'", lambda t: t("a", is_split_into_words="no"), ValueError,
     "is_split_into_words='no' is not allowed"),
    ("verbose=0", lambda t: t("a", verbose=0), ValueError, "verbose=0 is not allowed"),
    ("tokenizer_kwargs a list", lambda t: t("a", tokenizer_kwargs=["padding"]), ValueError,
     "tokenizer_kwargs=\\['padding'\\] is not allowed: tokenizer_kwargs must be a dict"),
    ("a typo in tokenizer_kwargs", lambda t: t("a", tokenizer_kwargs={"paddding": True}), TypeError,
     r"tokenizer_kwargs has unknown keywords \['paddding'\]"),
    ("a bad value in tokenizer_kwargs", lambda t: t("a", tokenizer_kwargs={"padding": "up"}), ValueError,
     "padding='up' is not allowed"),
    ("an unknown keyword", lambda t: t("a", paddding=True), TypeError, "unexpected keyword argument 'paddding'"),
    ("an unknown keyword to encode", lambda t: t.encode("a", return_offsets_mapping=True), TypeError,
     "unexpected keyword argument 'return_offsets_mapping'"),
    ("an unknown keyword to decode", lambda t: t.decode([0], skip_special=True), TypeError,
     "unexpected keyword argument 'skip_special'"),
    # ids
    ("decode([-1])", lambda t: t.decode([-1]), ValueError,
     "token_ids holds -1, which is not a token id: ids run from 0 to 699"),
    ("decode([10**12])", lambda t: t.decode([10**12]), ValueError, "token_ids holds 1000000000000, which is not"),
    ("decode an id past the vocabulary", lambda t: t.decode([0, 700]), ValueError, "holds 700, which is not"),
    ("a uint64 id above 2**63", lambda t: t.decode(np.array([2**64 - 1], dtype=np.uint64)), ValueError,
     "holds 18446744073709551615, which"),
    ("a float id", lambda t: t.decode([1.5]), ValueError, "token_ids must hold integer token ids, got float: 1.5"),
    ("a float array", lambda t: t.decode(np.array([1.0])), ValueError, "integer ids, got an array of float64"),
    ("a bool id", lambda t: t.decode([True]), ValueError, "integer token ids, got bool"),
    ("a 3-D batch", lambda t: t.decode([[[1]]]), ValueError, "integer token ids, got list"),
    ("a str to decode", lambda t: t.decode("abc"), ValueError, "token_ids must be an int, a list of ints"),
    ("None to decode", lambda t: t.decode(None), ValueError, "token_ids must be an int, a list of ints"),
    ("skip_special_tokens='yes'", lambda t: t.decode([0], skip_special_tokens="yes"), ValueError,
     "skip_special_tokens='yes' is not allowed"),
    ("batch_decode with a bad id", lambda t: t.batch_decode([[0, 1], [0, -5]]), ValueError, "holds -5"),
    ("convert_ids_to_tokens(-1)", lambda t: t.convert_ids_to_tokens(-1), ValueError,
     "ids holds -1, which is not a token id"),
    ("convert_ids_to_tokens past the vocabulary", lambda t: t.convert_ids_to_tokens([0, 5000]), ValueError,
     "ids holds 5000"),
    ("a uint64 scalar id", lambda t: t.convert_ids_to_tokens(np.uint64(2**63 + 5)), ValueError,
     "holds 9223372036854775813"),
    ("convert_tokens_to_ids(5)", lambda t: t.convert_tokens_to_ids(5), ValueError,
     "tokens must be a str or a list of str, got int"),
    ("a number among tokens", lambda t: t.convert_tokens_to_ids(["a", 5]), ValueError, r"tokens\[1\] must be a str"),
    ("convert_tokens_to_string of a str", lambda t: t.convert_tokens_to_string("abc"), ValueError,
     "tokens must be a list of str"),
    ("num_special_tokens_to_add(pair='yes')", lambda t: t.num_special_tokens_to_add(pair="yes"), ValueError,
     "pair='yes' is not allowed"),
    # pad()
    ("pad without input_ids", lambda t: t.pad({"ids": [1]}), ValueError, "pad takes a dict .* holding input_ids"),
    ("pad a bare list", lambda t: t.pad([1, 2, 3]), ValueError, "pad takes a dict"),
    ("pad a negative id", lambda t: t.pad({"input_ids": [[1, 2], [3, -1]]}), ValueError,
     "pad: input_ids holds -1"),
    ("pad rows that disagree", lambda t: t.pad({"input_ids": [[1], [2]], "attention_mask": [[1]]}), ValueError,
     "every key must hold 2 rows"),
    ("pad a mask of another length", lambda t: t.pad({"input_ids": [[1, 2]], "attention_mask": [[1]]}),
     ValueError, "attention_mask must have the length of input_ids"),
    ("pad a number", lambda t: t.pad({"input_ids": 5}), ValueError, "pad: input_ids must be a list"),
    ("pad dicts with other keys", lambda t: t.pad([{"input_ids": [1]}, {"x": [1]}]), ValueError,
     "the same keys"),
    ("pad with padding='left'", lambda t: t.pad({"input_ids": [1]}, padding="left"), ValueError,
     "pad: padding='left' is not allowed"),
    ("pad to a huge length", lambda t: t.pad({"input_ids": [1]}, padding="max_length", max_length=2**30),
     ValueError, "more than the 1048576 allowed"),
    # the BatchEncoding
    ("word_ids of a row that is not there", lambda t: t(["a", "b"]).word_ids(5), ValueError,
     "batch_index=5 is not a row of this batch of 2"),
    ("word_ids of pad() output", lambda t: t.pad({"input_ids": [[1]]}).word_ids(), ValueError,
     "needs the encodings of a tokenizer call"),
    ("token_to_chars past the row", lambda t: t("a").token_to_chars(99), ValueError, "token_index=99 is not a"),
    ("char_to_token(-1)", lambda t: t("a").char_to_token(-1), ValueError, "char_index=-1 must be an int >= 0"),
    ("a float row index", lambda t: t(["a"])[1.5], KeyError, "indexed by a key"),
    # from_pretrained
    ("from_pretrained(None)", lambda t: LongformerTokenizer.from_pretrained(None), ValueError,
     r"the tokenizer must be a folder \(str or os.PathLike\) or a Hub repository name.*got NoneType"),
    ("a bytes path", lambda t: LongformerTokenizer.from_pretrained(b"/tmp"), ValueError, "got bytes b'/tmp'"),
    ("an empty name", lambda t: LongformerTokenizer.from_pretrained(""), ValueError, "empty string"),
    ("a file for a folder", lambda t: LongformerTokenizer.from_pretrained(__file__), ValueError,
     "is a file, not a folder"),
    ("model_max_length=0", lambda t: LongformerTokenizer.from_pretrained(".", model_max_length=0), ValueError,
     "from_pretrained: model_max_length=0 is not allowed"),
    ("padding_side='up'", lambda t: LongformerTokenizer.from_pretrained(".", padding_side="up"), ValueError,
     "from_pretrained: padding_side='up' is not allowed"),
    ("revision=3", lambda t: LongformerTokenizer.from_pretrained(".", revision=3), ValueError,
     "from_pretrained: revision=3 is not allowed"),
    ("an unknown keyword to from_pretrained", lambda t: LongformerTokenizer.from_pretrained(".", use_fast=True),
     TypeError, "unexpected keyword argument 'use_fast'"),
    ("save_pretrained(None)", lambda t: t.save_pretrained(None), ValueError, "must be a folder"),
]


@pytest.mark.parametrize("what, call, error, message", CALLS, ids=[c[0] for c in CALLS])
def test_a_bad_call_says_what_is_wrong(tok, what, call, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message):
            call(tok)


# (what is wrong, the file, its content (bytes, or an object written as JSON), what the message must say)
FOLDERS = [
    ("tokenizer_config.json is not JSON", "tokenizer_config.json", b"{model_max_length: 4096", "not valid JSON"),
    ("tokenizer_config.json is not UTF-8", "tokenizer_config.json", b'{"bos_token": "\xff"}', "not UTF-8"),
    ("tokenizer_config.json is a list", "tokenizer_config.json", [1, 2], "must hold a JSON object, got list"),
    ("special_tokens_map.json is not JSON", "special_tokens_map.json", b"[", "not valid JSON"),
    ("special_tokens_map.json is not UTF-8", "special_tokens_map.json", b"\xfe\xff", "not UTF-8"),
    ("special_tokens_map.json is a str", "special_tokens_map.json", "pad", "must hold a JSON object, got str"),
    ("vocab.json is not UTF-8", "vocab.json", b'{"a\xff": 0}', r"vocab\.json is not UTF-8"),
    ("vocab.json is not JSON", "vocab.json", b'{"a": 0,', r"vocab\.json is not valid JSON"),
    ("vocab.json is a list", "vocab.json", ["a", "b"], r"vocab\.json must hold a JSON object"),
    ("a vocab.json id is a str", "vocab.json", {"<s>": "zero"}, r"vocab\.json: the id of '<s>' is 'zero'"),
    ("a vocab.json id is negative", "vocab.json", {"<s>": -1}, "the id of '<s>' is -1"),
    ("merges.txt is not UTF-8", "merges.txt", b"#version: 0.2\n\xff\xfe a\n", r"could not read .*merges\.txt"),
    ("tokenizer.json is not JSON", "tokenizer.json", b"{", r"could not read .*tokenizer\.json"),
    ("tokenizer.json is not UTF-8", "tokenizer.json", b"\xff\xfe", r"could not read .*tokenizer\.json"),
    ("model_max_length is a str", "tokenizer_config.json", {"model_max_length": "big"},
     r"tokenizer_config\.json: model_max_length is 'big', but it must be a positive int or null"),
    ("model_max_length is negative", "tokenizer_config.json", {"model_max_length": -5}, "model_max_length is -5"),
    ("model_max_length is a bool", "tokenizer_config.json", {"model_max_length": True}, "model_max_length is True"),
    ("model_max_length is a fraction", "tokenizer_config.json", {"model_max_length": 12.5}, "is 12.5"),
    ("bos_token is a number", "tokenizer_config.json", {"bos_token": 5}, "bos_token is 5, but it must be a str"),
    ("pad_token is a list", "special_tokens_map.json", {"pad_token": ["x"]},
     r"special_tokens_map\.json: pad_token is \['x'\]"),
    ("mask_token content is a number", "special_tokens_map.json", {"mask_token": {"content": 3}},
     "mask_token is {'content': 3}"),
    ("mask_token lstrip is a str", "special_tokens_map.json", {"mask_token": {"content": "<mask>", "lstrip": "y"}},
     "mask_token is"),
    ("padding_side is 'middle'", "tokenizer_config.json", {"padding_side": "middle"},
     "padding_side is 'middle', but it must be 'right' or 'left'"),
    ("add_prefix_space is a str", "tokenizer_config.json", {"add_prefix_space": "yes"},
     "add_prefix_space is 'yes', but it must be true, false or null"),
    ("added_tokens.json is not JSON", "added_tokens.json", b"{", r"added_tokens\.json is not valid JSON"),
    ("an added token's id is a str", "added_tokens.json", {"<ent>": "700"},
     r"added_tokens\.json: '<ent>' has id '700'; the file maps each token to an id >= 0"),
    ("an added token past the vocabulary", "added_tokens.json", {"<ent>": 705},
     r"added_tokens\.json gives '<ent>' the id 705, but the vocabulary holds it at 700"),
    ("an added token at a taken id", "added_tokens.json", {"Ġthe": 3}, "gives 'Ġthe' the id 3, but the vocab"),
    ("a folder named tokenizer_config.json", "tokenizer_config.json", None, "is not a file"),
]


@pytest.mark.parametrize("what, name, content, message", FOLDERS, ids=[f[0] for f in FOLDERS])
def test_a_broken_folder_names_the_file_and_the_problem(bpe_directory, tmp_path, what, name, content,  # noqa: F811
                                                        message):
    for source in ("vocab.json", "merges.txt"):
        shutil.copy(bpe_directory / source, tmp_path / source)
    path = tmp_path / name
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(ValueError, match=message) as caught:
        LongformerTokenizer.from_pretrained(tmp_path)
    assert name in str(caught.value)  # the message names the file


# ----- random calls: a result, or a ValueError / TypeError -----

_texts = st.one_of(st.text(max_size=30), st.lists(st.text(max_size=12), max_size=3),
                   st.lists(st.lists(st.text(max_size=6), max_size=3), max_size=2),
                   st.sampled_from([None, 42, b"bytes", "a\ud800", ["a", None], [], 1.5]))
_values = st.one_of(st.booleans(), st.none(), st.integers(-3, 70), st.integers(-2**70, 2**70),
                    st.sampled_from(["longest", "max_length", "do_not_pad", "longest_first", "only_first",
                                     "only_second", "do_not_truncate", "left", "right", "np", "pt", "tf", ""]),
                    st.floats(allow_nan=True), st.just([1]))
_KEYWORDS = ["add_special_tokens", "padding", "truncation", "max_length", "stride", "is_split_into_words",
             "pad_to_multiple_of", "padding_side", "return_tensors", "return_token_type_ids",
             "return_attention_mask", "return_overflowing_tokens", "return_special_tokens_mask",
             "return_offsets_mapping", "return_length", "split_special_tokens", "no_such_keyword"]
_ids = st.one_of(st.integers(-2**70, 2**70), st.integers(0, 699), st.floats(), st.none(), st.text(max_size=3),
                 st.lists(st.one_of(st.integers(-5, 800), st.floats(), st.booleans()), max_size=6),
                 st.lists(st.lists(st.integers(-2, 720), max_size=4), max_size=3),
                 st.lists(st.integers(0, 2**64 - 1), max_size=4).map(lambda ids: np.array(ids, dtype=np.uint64)))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts, pair=st.one_of(st.none(), _texts),
       kwargs=st.dictionaries(st.sampled_from(_KEYWORDS), _values, max_size=5), ids=_ids)
def test_random_calls_give_a_result_or_a_clear_error(tok, text, pair, kwargs, ids):
    """Whatever the call, the only outcomes are a result or a ValueError/TypeError; never a crash, an OverflowError
    of tokenizers, an IndexError, or a bare Exception. About 250 calls of each entry point, well under 20 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for call in (lambda: tok(text, pair, **kwargs), lambda: tok.encode(text, pair, **{
                k: v for k, v in kwargs.items() if k in ("add_special_tokens", "padding", "truncation", "max_length",
                                                         "stride", "padding_side", "return_tensors")}),
                     lambda: tok.decode(ids), lambda: tok.convert_ids_to_tokens(ids),
                     lambda: tok.pad({"input_ids": ids}, **{k: v for k, v in kwargs.items() if k in (
                         "padding", "max_length", "pad_to_multiple_of", "padding_side", "return_tensors")})):
            try:
                result = call()
            except (ValueError, TypeError) as error:
                assert str(error), "an error must say what is wrong"
                continue
            assert isinstance(result, (BatchEncoding, str, list, np.ndarray)) or hasattr(result, "shape")


def test_random_calls_fit_the_time_bound(tok):
    """The property above stays bounded: a max_length that would pad to terabytes is refused up front."""
    with pytest.raises(ValueError, match="more than the 1048576 allowed"):
        tok(["a"] * 4, padding="max_length", max_length=2**32 - 1)
