"""The tokenizer: text to the `input_ids` and `attention_mask` the model reads, as transformers gives them.

It is a drop-in for transformers' `LongformerTokenizerFast` (in transformers 5 an alias of `RobertaTokenizer`):
Longformer (Beltagy, Peters, Cohan 2020, arXiv 2004.05150) keeps RoBERTa's byte-level BPE unchanged. The calls,
their keywords, defaults and results are transformers 5.23's (`tokenization_utils_base.py` and
`tokenization_utils_tokenizers.py`): python lists unless `return_tensors="np"` (or "pt" where torch is installed),
flat lists for one text, the keys `input_ids`, `token_type_ids`, `attention_mask`, `special_tokens_mask`,
`offset_mapping`, `length`, `overflow_to_sample_mapping`, in that order.

This file is one small layer over a `tokenizers.Tokenizer`, the Rust code transformers itself calls: tokenizers
encodes, truncates (strategy, stride, overflowing windows), pads (side, length, pad_to_multiple_of) and reports
offsets, special-token masks and word ids. What is written here is what tokenizers does not do: loading the files,
turning transformers' padding/truncation arguments into tokenizers settings (`_plan`, transformers' rules), checking
every argument at the boundary (`_check`), laying the encodings out as transformers' BatchEncoding, and `pad()` of
ids that were encoded already (tokenizers cannot build an Encoding from ids). It imports neither torch (unless
return_tensors="pt" asks for it) nor transformers.

    one text      <s> A </s>
    a pair        <s> A </s></s> B </s>

From `vocab.json` + `merges.txt` it builds what transformers builds: a BPE model, the ByteLevel pre-tokenizer
(add_prefix_space=False, so "Hello" and " Hello" get different ids), the ByteLevel decoder and the RobertaProcessing
post-processor. A `tokenizer.json` is loaded as it is, whatever model it holds (a BERT WordPiece one too, e.g.
all-MiniLM-L6-v2's `[CLS] A [SEP]`): its post-processor decides which tokens wrap a sequence.

Deliberately different from transformers, because its answer there is a crash or silently wrong:
- Every bad argument is a ValueError that names the argument and says what is allowed; an unknown keyword is a
  TypeError, as Python's own (transformers ignores unknown keywords, and crashes on `tok([])`, on a lone surrogate,
  on `decode([-1])` with OverflowError).
- An id outside the vocabulary is a ValueError in `decode` and `convert_ids_to_tokens` (transformers skips it or
  returns None).
- `max_length` shorter than the special tokens, with truncation, is a ValueError (tokenizers then returns the whole
  sequence untruncated).
- A ragged batch with `return_tensors="np"` is a ValueError asking for padding (transformers builds an object array
  of arrays, which no model can read).
- Where transformers silently skips what was asked (padding="max_length" or truncation without a max_length when
  model_max_length is unknown, a max_length that nothing uses), the result is the same and a warning says so.
- `pad()` with return_attention_mask=False pads an attention_mask it was given along with the ids (transformers
  leaves it shorter than its row).
- Not provided: the constructor from vocab/merges (`LongformerTokenizer(backend, ...)` takes a tokenizers.Tokenizer;
  use from_pretrained), save_pretrained's keywords beyond the folder, chat templates, `add_tokens`, setting special
  tokens after loading, extra (additional) special tokens, a separate target mode for `text_target` (labels are the
  target's input_ids, as for RoBERTa), `BatchEncoding.to()` and its word/char mappings beyond word_ids, tokens,
  sequence_ids, token_to_chars and char_to_token.

Legend: B batch (texts, or windows with return_overflowing_tokens), N sequence length (special tokens included).
"""

from __future__ import annotations

import enum
import json
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from refimpl.io.hub import checkpoint_path, resolve
from refimpl.io.jsonfile import read_json

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
# what from_pretrained fetches from the Hub: the tokenizer's files and nothing else
TOKENIZER_FILES = (TOKENIZER_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE, VOCAB_FILE, MERGES_FILE, ADDED_TOKENS_FILE)

# transformers' order of the named special tokens (SPECIAL_TOKENS_ATTRIBUTES); all_special_tokens follows it.
SPECIAL_TOKEN_ROLES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
ROBERTA_SPECIAL_TOKENS = {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "sep": "</s>", "pad": "<pad>", "cls": "<s>",
                          "mask": "<mask>"}

PADDING_CHOICES = (True, False, "longest", "max_length", "do_not_pad")
TRUNCATION_CHOICES = (True, False, None, "longest_first", "only_first", "only_second", "do_not_truncate")
SIDES = ("right", "left")
TENSOR_TYPES = (None, "np", "pt")
# transformers' stand-in for "this model has no maximum length", and the bound above which a length means unknown
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)
# Bounds that keep a typo from asking for terabytes: tokenizers holds lengths as u32, and a padded row longer than
# 2**20 tokens (256 times Longformer's 4,096 positions) is a mistake, not a document.
MAX_LENGTH = 2**32 - 1
MAX_PADDED_LENGTH = 2**20


# ----- argument checks: one table, one message shape -----


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not _is_bool(v)


def _plain(value):
    """transformers' PaddingStrategy / TruncationStrategy / TensorType members stand for their string values."""
    return value.value if isinstance(value, enum.Enum) else value


def _one_of(choices):
    # bool(True) == 1 == 1.0, so the type is compared too: padding=1 is not padding=True
    return lambda v: any(type(_plain(v)) is type(c) and _plain(v) == c for c in choices) or (
        _is_bool(v) and bool(v) in choices)


@dataclass(frozen=True)
class _Rule:
    test: object  # value -> bool
    allowed: str  # what the message says is allowed


_FLAG = _Rule(_is_bool, "True or False")
_OPTIONAL_FLAG = _Rule(lambda v: v is None or _is_bool(v), "True, False or None")
_POSITIVE = _Rule(lambda v: v is None or (_is_int(v) and 0 < v <= MAX_LENGTH),
                  f"a positive int <= {MAX_LENGTH} or None")
_MULTIPLE = _Rule(lambda v: v is None or (_is_int(v) and 0 < v <= MAX_PADDED_LENGTH),
                  f"a positive int <= {MAX_PADDED_LENGTH} or None")
RULES = {
    "add_special_tokens": _FLAG, "is_split_into_words": _FLAG, "return_overflowing_tokens": _FLAG,
    "return_special_tokens_mask": _FLAG, "return_offsets_mapping": _FLAG, "return_length": _FLAG, "verbose": _FLAG,
    "skip_special_tokens": _FLAG, "pair": _FLAG, "return_token_type_ids": _OPTIONAL_FLAG,
    "return_attention_mask": _OPTIONAL_FLAG,
    "split_special_tokens": _OPTIONAL_FLAG, "clean_up_tokenization_spaces": _OPTIONAL_FLAG,
    "padding": _Rule(_one_of(PADDING_CHOICES), f"one of {PADDING_CHOICES}"),
    "truncation": _Rule(_one_of(TRUNCATION_CHOICES), f"one of {TRUNCATION_CHOICES}"),
    "max_length": _POSITIVE, "max_target_length": _POSITIVE, "pad_to_multiple_of": _MULTIPLE,
    "stride": _Rule(lambda v: _is_int(v) and 0 <= v <= MAX_LENGTH, f"an int from 0 to {MAX_LENGTH}"),
    "padding_side": _Rule(_one_of((None,) + SIDES), "'right', 'left' or None"),
    "return_tensors": _Rule(_one_of(TENSOR_TYPES), f"one of {TENSOR_TYPES} ('pt' needs torch)"),
    "tokenizer_kwargs": _Rule(lambda v: v is None or isinstance(v, Mapping), "a dict of keyword arguments or None"),
    # from_pretrained and the tokenizer_config.json it reads
    "model_max_length": _Rule(lambda v: v is None or (_is_int(v) and v > 0), "a positive int or None"),
    "truncation_side": _Rule(_one_of((None,) + SIDES), "'right', 'left' or None"),
    "cache_dir": _Rule(lambda v: v is None or isinstance(v, (str, os.PathLike)), "a folder (str) or None"),
    "revision": _Rule(lambda v: v is None or isinstance(v, str), "a branch, tag or commit (str) or None"),
    "token": _Rule(lambda v: v is None or isinstance(v, (str, bool)), "a str, a bool or None"),
    "force_download": _FLAG, "local_files_only": _FLAG, "trust_remote_code": _FLAG, "add_prefix_space": _OPTIONAL_FLAG,
}


def _check(arguments: dict, where: str = "") -> None:
    """Every argument against its rule in RULES; the first that breaks it is a ValueError naming it."""
    for name, value in arguments.items():
        rule = RULES[name]
        if not rule.test(value):
            raise ValueError(f"{where}{name}={_show(value)} is not allowed: {name} must be {rule.allowed}")


def _show(value) -> str:
    """A value for a message, short, and as the user wrote it (a uint64 id prints as its true value)."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_str(text, name: str) -> None:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a str, got {type(text).__name__}: {_show(text)}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate, e.g. from reading bytes with errors="surrogateescape"
        raise ValueError(f"{name} holds {text[error.start]!r} at character {error.start}, a lone surrogate that is "
                         "not Unicode text: decode the source with errors='replace', or remove it") from None


# ----- what a call returns -----


class CharSpan(NamedTuple):
    """A token's characters [start, end) in its text (transformers' CharSpan)."""

    start: int
    end: int


class BatchEncoding(dict):
    """What a call returns, as transformers' BatchEncoding: a dict (so `model(**encoding)` works) whose keys also
    read as attributes (`enc.input_ids`); `enc[i]` is the tokenizers Encoding of row i, and `word_ids(i)`,
    `tokens(i)`, `sequence_ids(i)`, `token_to_chars`, `char_to_token` read it. In a pair, the offsets of B's tokens
    index into B's own text.
    """

    def __init__(self, data=None, encodings: list[Encoding] | None = None, n_sequences: int | None = None):
        super().__init__(data or {})
        self._encodings = encodings
        self._n_sequences = n_sequences

    def __getattr__(self, name):
        if name.startswith("_"):  # not a key: keeps copy/pickle probing for hooks out of the dict
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, item):
        if isinstance(item, str):
            return super().__getitem__(item)
        if self._encodings is not None and isinstance(item, (int, np.integer, slice)):
            return self._encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        raise KeyError(f"{_show(item)}: a BatchEncoding is indexed by a key (str), a row (int) or a slice")

    def __reduce__(self):
        return BatchEncoding, (dict(self), self._encodings, self._n_sequences)

    @property
    def encodings(self) -> list[Encoding] | None:
        return self._encodings

    @property
    def n_sequences(self) -> int | None:
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    def _encoding(self, batch_index, what: str) -> Encoding:
        if not self._encodings:
            raise ValueError(f"{what}() needs the encodings of a tokenizer call; pad() output has none")
        if not _is_int(batch_index) or not -len(self._encodings) <= batch_index < len(self._encodings):
            raise ValueError(f"batch_index={_show(batch_index)} is not a row of this batch of "
                             f"{len(self._encodings)}")
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        return self._encoding(batch_index, "tokens").tokens

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index, "word_ids").word_ids

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index, "sequence_ids").sequence_ids

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        """(start, end) characters of a token; as transformers, one int means row 0. None for a special token."""
        batch, index = (0, batch_or_token_index) if token_index is None else (batch_or_token_index, token_index)
        encoding = self._encoding(batch, "token_to_chars")
        if not _is_int(index) or not -len(encoding) <= index < len(encoding):
            raise ValueError(f"token_index={_show(index)} is not a token of this row of {len(encoding)}")
        span = encoding.token_to_chars(int(index))
        return None if span is None else CharSpan(*span)

    def char_to_token(self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0):
        """The token covering a character (None for a space no token covers); one int means row 0."""
        batch, index = (0, batch_or_char_index) if char_index is None else (batch_or_char_index, char_index)
        if not _is_int(index) or index < 0 or sequence_index not in (0, 1):
            raise ValueError(f"char_index={_show(index)} must be an int >= 0 and sequence_index 0 or 1")
        return self._encoding(batch, "char_to_token").char_to_token(int(index), sequence_index)


@dataclass(frozen=True)
class _Plan:
    """One call's padding and truncation as tokenizers takes them (transformers' strategies, resolved)."""

    padding: str  # "do_not_pad", "longest" or "max_length"
    truncation: str  # "do_not_truncate", "longest_first", "only_first" or "only_second"
    max_length: int | None


def _named_token(role: str):
    return property(lambda self: self._special_tokens.get(role),
                    doc=f"The {role} token's text (None if this tokenizer has none).")


def _named_token_id(role: str):
    def token_id(self):
        text = self._special_tokens.get(role)
        return None if text is None else self._backend.token_to_id(text)  # from_pretrained added every one
    return property(token_id, doc=f"The {role} token's id (None if this tokenizer has none).")


class LongformerTokenizer:
    """RoBERTa's byte-level BPE as Longformer uses it, on top of a `tokenizers.Tokenizer`.

    Build one with `LongformerTokenizer.from_pretrained(folder or Hub name)`.
    """

    model_input_names = ["input_ids", "attention_mask"]
    SPECIAL_TOKENS_ATTRIBUTES = [f"{role}_token" for role in SPECIAL_TOKEN_ROLES]

    def __init__(self, backend: Tokenizer, special_tokens: dict[str, str], model_max_length: int | None = None,
                 config: dict | None = None, padding_side: str = "right", truncation_side: str = "right",
                 name_or_path: str = ""):
        self._backend = backend
        # The backend's padding and truncation are set per call; a lock keeps two threads (Streamlit reruns) from
        # mixing their settings.
        self._lock = threading.Lock()
        self._backend.no_truncation()
        self._backend.no_padding()
        self._special_tokens = dict(special_tokens)  # role ("bos", ...) -> token text
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self._config = dict(config or {})  # the tokenizer_config.json read, kept so save_pretrained writes it back
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.name_or_path = name_or_path
        self.clean_up_tokenization_spaces = bool(self._config.get("clean_up_tokenization_spaces", False))
        self.split_special_tokens = bool(self._config.get("split_special_tokens", False))
        self._warned_too_long = False

    # ----- loading and saving -----

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, cache_dir=None,
                        force_download: bool = False, local_files_only: bool = False, token=None,
                        revision: str = "main", trust_remote_code: bool = False, model_max_length: int | None = None,
                        padding_side: str | None = None, truncation_side: str | None = None,
                        add_prefix_space: bool | None = None) -> LongformerTokenizer:
        """Load from a folder or a Hub repository name (only the tokenizer files are fetched): `tokenizer.json` if
        there is one, else `vocab.json` + `merges.txt`.

        `tokenizer_config.json` and `special_tokens_map.json`, when present, name the special tokens and give
        `model_max_length`, `padding_side`, `truncation_side`, `add_prefix_space`; the keyword arguments override
        theirs. add_prefix_space=True (a space before the first word, as RoBERTa needs with is_split_into_words)
        reaches a ByteLevel pre-tokenizer and a RobertaProcessing post-processor, as in transformers' Roberta.
        `trust_remote_code` is accepted as in transformers and changes nothing: no code is ever loaded.
        """
        name = checkpoint_path(pretrained_model_name_or_path, "tokenizer")
        _check(dict(cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only,
                    token=token, revision=revision, trust_remote_code=trust_remote_code,
                    model_max_length=model_max_length, padding_side=padding_side, add_prefix_space=add_prefix_space,
                    truncation_side=truncation_side), "from_pretrained: ")
        directory = os.fspath(resolve(name, TOKENIZER_FILES, revision=revision, cache_dir=cache_dir,
                                      local_files_only=local_files_only, token=token,
                                      force_download=force_download, what="tokenizer"))
        config = read_json(os.path.join(directory, CONFIG_FILE))
        special_tokens_map = read_json(os.path.join(directory, SPECIAL_TOKENS_FILE))
        _check_config(config, os.path.join(directory, CONFIG_FILE))
        _check_config(special_tokens_map, os.path.join(directory, SPECIAL_TOKENS_FILE))
        if add_prefix_space is not None:
            config["add_prefix_space"] = bool(add_prefix_space)  # saved with the config, as transformers does
        # special_tokens_map.json wins over tokenizer_config.json, as in transformers
        named = {role: source[f"{role}_token"] for source in (config, special_tokens_map)
                 for role in SPECIAL_TOKEN_ROLES if source.get(f"{role}_token")}

        tokenizer_path = os.path.join(directory, TOKENIZER_FILE)
        vocab_path = os.path.join(directory, VOCAB_FILE)
        merges_path = os.path.join(directory, MERGES_FILE)
        if os.path.isfile(tokenizer_path):
            try:
                backend = Tokenizer.from_file(tokenizer_path)
            except Exception as error:  # tokenizers raises a bare Exception for a file it cannot parse
                raise ValueError(f"could not read {tokenizer_path}: {error}") from None
            # Roles the files do not name: first what tokenizer.json itself says, then RoBERTa's names where the
            # vocabulary has them (so a BERT tokenizer.json does not get a "<mask>" it lacks).
            guessed = {**ROBERTA_SPECIAL_TOKENS, **_special_tokens_in_tokenizer_json(backend)}
            guessed = {role: text for role, text in guessed.items() if backend.token_to_id(text) is not None}
        elif os.path.isfile(vocab_path) and os.path.isfile(merges_path):
            backend = _roberta_backend(vocab_path, merges_path, add_prefix_space=config.get("add_prefix_space", False))
            guessed = dict(ROBERTA_SPECIAL_TOKENS)  # transformers adds these even where the vocabulary lacks them
        else:
            found = sorted(os.listdir(directory))
            raise ValueError(f"no tokenizer files in {directory!r}: looked for {TOKENIZER_FILE}, or {VOCAB_FILE} "
                             f"and {MERGES_FILE} together; found {found}")

        _add_legacy_added_tokens(backend, os.path.join(directory, ADDED_TOKENS_FILE),
                                 {_token_text(value) for value in named.values()})

        # Register the named special tokens the tokenizer does not know yet (a vocabulary entry becomes a special
        # added token, so it is matched whole in text and skipped by decode(skip_special_tokens=True)). Tokens the
        # tokenizer.json already lists keep their own flags (lstrip and so on).
        chosen = {role: named.get(role, guessed.get(role)) for role in SPECIAL_TOKEN_ROLES}
        chosen = {role: value for role, value in chosen.items() if value is not None}
        special_tokens = {role: _token_text(value) for role, value in chosen.items()}
        known = {token.content for token in backend.get_added_tokens_decoder().values()}
        to_add = []
        for role, value in chosen.items():
            if special_tokens[role] not in known:
                to_add.append(_added_token(value))
                known.add(special_tokens[role])
        backend.add_special_tokens(to_add)

        if config.get("add_prefix_space") is not None:
            _set_prefix_space(backend, bool(config["add_prefix_space"]), bool(config.get("trim_offsets", True)))
        if backend.post_processor is None and "cls" in special_tokens and "sep" in special_tokens:
            # the vocab.json route: <s> A </s> and <s> A </s></s> B </s>, with the ids the vocabulary gives
            cls_text, sep_text = special_tokens["cls"], special_tokens["sep"]
            backend.post_processor = processors.RobertaProcessing(
                (sep_text, backend.token_to_id(sep_text)), (cls_text, backend.token_to_id(cls_text)),
                trim_offsets=bool(config.get("trim_offsets", True)),
                add_prefix_space=bool(config.get("add_prefix_space", False)))

        if model_max_length is None:
            model_max_length = config.get("model_max_length")
        if model_max_length is not None and model_max_length >= LARGE_INTEGER:
            model_max_length = None  # transformers' 1e30: unknown
        return cls(backend, special_tokens, None if model_max_length is None else int(model_max_length), config,
                   padding_side=padding_side or config.get("padding_side", "right"),
                   truncation_side=truncation_side or config.get("truncation_side", "right"), name_or_path=name)

    def save_pretrained(self, save_directory: str | os.PathLike) -> tuple[str, str, str]:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; returns their paths.

        The files load back here and in transformers (`AutoTokenizer` needs the checkpoint's `tokenizer_class`,
        kept from the config read).
        """
        directory = checkpoint_path(save_directory, "folder to save the tokenizer in")
        os.makedirs(directory, exist_ok=True)
        tokenizer_json = json.loads(self._backend.to_str())
        tokenizer_json["truncation"] = None  # per-call settings are not part of the tokenizer
        tokenizer_json["padding"] = None
        config = dict(self._config)
        config.update({f"{role}_token": text for role, text in self._special_tokens.items()})
        config.pop("model_max_length", None)
        if self.model_max_length < LARGE_INTEGER:
            config["model_max_length"] = self.model_max_length
        config.update(padding_side=self.padding_side, truncation_side=self.truncation_side)

        paths = tuple(os.path.join(directory, name) for name in (TOKENIZER_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE))
        for path, content in zip(paths, (tokenizer_json, config, self.special_tokens_map)):
            with open(path, "w", encoding="utf-8") as file:
                json.dump(content, file, indent=2, ensure_ascii=False)
                file.write("\n")
        return paths

    # ----- the vocabulary and the special tokens -----

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens (transformers' `vocab_size`)."""
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included (transformers' `len(tokenizer)`)."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    @property
    def backend_tokenizer(self) -> Tokenizer:
        return self._backend

    @property
    def is_fast(self) -> bool:
        return True

    bos_token, bos_token_id = _named_token("bos"), _named_token_id("bos")
    eos_token, eos_token_id = _named_token("eos"), _named_token_id("eos")
    unk_token, unk_token_id = _named_token("unk"), _named_token_id("unk")
    sep_token, sep_token_id = _named_token("sep"), _named_token_id("sep")
    pad_token, pad_token_id = _named_token("pad"), _named_token_id("pad")
    cls_token, cls_token_id = _named_token("cls"), _named_token_id("cls")
    mask_token, mask_token_id = _named_token("mask"), _named_token_id("mask")
    pad_token_type_id = 0

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """{"bos_token": "<s>", ...} for the roles this tokenizer has, in transformers' order."""
        return {f"{role}_token": self._special_tokens[role] for role in SPECIAL_TOKEN_ROLES
                if role in self._special_tokens}

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys(self.special_tokens_map.values()))  # unique, first role first

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        _check(dict(pair=pair))
        return self._backend.num_special_tokens_to_add(pair)

    def _convert_token_to_id(self, token: str) -> int | None:
        token_id = self._backend.token_to_id(token)
        return self.unk_token_id if token_id is None else token_id

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        """Token text to id; a token outside the vocabulary gives `unk_token_id` (None if there is no unk token)."""
        if isinstance(tokens, str):
            return self._convert_token_to_id(tokens)
        if not isinstance(tokens, (list, tuple)):
            raise ValueError(f"tokens must be a str or a list of str, got {type(tokens).__name__}: {_show(tokens)}")
        for i, token in enumerate(tokens):
            if not isinstance(token, str):
                raise ValueError(f"tokens[{i}] must be a str, got {type(token).__name__}: {_show(token)}")
        return [self._convert_token_to_id(token) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Id to token text, in the model's own alphabet (byte-level BPE writes a space as "Ġ")."""
        _check(dict(skip_special_tokens=skip_special_tokens))
        if _is_int(ids):
            return self._backend.id_to_token(self._checked_ids(ids, "ids"))
        ids = self._checked_ids(ids, "ids", depth=1)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._backend.id_to_token(i) for i in ids if i not in skip]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        if not isinstance(tokens, (list, tuple)) or not all(isinstance(token, str) for token in tokens):
            raise ValueError(f"tokens must be a list of str, got {_show(tokens)}")
        decoder = self._backend.decoder
        return " ".join(tokens) if decoder is None else decoder.decode(list(tokens))

    def _checked_ids(self, ids, name: str, depth: int = 0, inner: bool = False):
        """ids as python ints in [0, len(self)): an int (depth 0), a sequence (1), or up to one more level (2),
        from lists, NumPy arrays or torch tensors. Returns the ints, nested as given."""
        if hasattr(ids, "tolist") and not isinstance(ids, (list, tuple)):  # a NumPy array or a torch tensor
            dtype = getattr(ids, "dtype", None)
            if isinstance(ids, np.ndarray) and dtype.kind not in "iu":
                raise ValueError(f"{name} must hold integer ids, got an array of {dtype}")
            ids = ids.tolist()  # python ints, so a uint64 above 2**63 stays itself
        if _is_int(ids):
            if not 0 <= ids < len(self):
                raise ValueError(f"{name} holds {int(ids)}, which is not a token id: ids run from 0 to "
                                 f"{len(self) - 1} in this vocabulary of {len(self)}")
            return int(ids)
        if depth == 0 or inner and not isinstance(ids, (list, tuple)):
            raise ValueError(f"{name} must hold integer token ids, got {type(ids).__name__}: {_show(ids)}")
        if not isinstance(ids, (list, tuple)):
            raise ValueError(f"{name} must be an int, a list of ints or an array of ints, got "
                             f"{type(ids).__name__}: {_show(ids)}")
        return [self._checked_ids(i, name, depth - 1, inner=True) for i in ids]

    # ----- encoding -----

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, *,
                 is_split_into_words: bool = False, split_special_tokens: bool | None = None) -> list[str]:
        """The tokens of a text (or a pair), without special tokens unless asked for."""
        return self(text, pair, add_special_tokens=add_special_tokens, is_split_into_words=is_split_into_words,
                    split_special_tokens=split_special_tokens).tokens()

    def encode(self, text, text_pair=None, add_special_tokens: bool = True, padding: bool | str = False,
               truncation: bool | str | None = None, max_length: int | None = None, stride: int = 0,
               padding_side: str | None = None, return_tensors: str | None = None, *,
               is_split_into_words: bool = False, pad_to_multiple_of: int | None = None,
               split_special_tokens: bool | None = None, verbose: bool = True):
        """The ids of a text (or a pair): a list, or a (1, N) array with return_tensors."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
                    max_length=max_length, stride=stride, padding_side=padding_side, return_tensors=return_tensors,
                    is_split_into_words=is_split_into_words, pad_to_multiple_of=pad_to_multiple_of,
                    split_special_tokens=split_special_tokens, verbose=verbose)["input_ids"]

    def __call__(self, text=None, text_pair=None, text_target=None, text_pair_target=None,
                 add_special_tokens: bool = True, padding: bool | str = False, truncation: bool | str | None = None,
                 max_length: int | None = None, stride: int = 0, is_split_into_words: bool = False,
                 pad_to_multiple_of: int | None = None, padding_side: str | None = None,
                 return_tensors: str | None = None, return_token_type_ids: bool | None = None,
                 return_attention_mask: bool | None = None, return_overflowing_tokens: bool = False,
                 return_special_tokens_mask: bool = False, return_offsets_mapping: bool = False,
                 return_length: bool = False, verbose: bool = True, tokenizer_kwargs: dict | None = None, *,
                 split_special_tokens: bool | None = None, max_target_length: int | None = None) -> BatchEncoding:
        """Tokenize a text, a batch of texts, their pairs (and targets, returned as `labels`), as transformers.

        padding     False: no padding (a batch gives lists of different lengths); True or "longest": pad to the
                    longest row; "max_length": pad to max_length (model_max_length when None). pad_to_multiple_of
                    rounds the padded length up (Longformer pads to its attention window).
        truncation  None: on when max_length is given without padding; True / "longest_first" (cut the longer of a
                    pair first), "only_first", "only_second": cut to max_length (model_max_length when None),
                    special tokens included. With return_overflowing_tokens the cut tokens come back as more rows,
                    each overlapping the one before by `stride` tokens, and overflow_to_sample_mapping says whose.
        """
        options = dict(add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
                       max_length=max_length, stride=stride, is_split_into_words=is_split_into_words,
                       pad_to_multiple_of=pad_to_multiple_of, padding_side=padding_side,
                       return_tensors=return_tensors, return_token_type_ids=return_token_type_ids,
                       return_attention_mask=return_attention_mask,
                       return_overflowing_tokens=return_overflowing_tokens,
                       return_special_tokens_mask=return_special_tokens_mask,
                       return_offsets_mapping=return_offsets_mapping, return_length=return_length, verbose=verbose,
                       split_special_tokens=split_special_tokens, max_target_length=max_target_length)
        _check(dict(tokenizer_kwargs=tokenizer_kwargs))
        if tokenizer_kwargs:  # they override the arguments, as in transformers 5.23 (whatever its comment says)
            unknown = sorted(set(tokenizer_kwargs) - set(options))
            if unknown:
                raise TypeError(f"tokenizer_kwargs has unknown keywords {unknown}; allowed: {sorted(options)}")
            options = {**options, **tokenizer_kwargs}
        _check(options)
        if text is None and text_target is None:
            raise ValueError("pass text (or text_target): a str, a list of str, or words with is_split_into_words")
        max_target_length = options.pop("max_target_length")
        plan = self._plan(options.pop("padding"), options.pop("truncation"), options.pop("max_length"),
                          options["pad_to_multiple_of"], options["verbose"])
        if text is None:
            return self._encode(text_target, text_pair_target, plan, **options)
        encoding = self._encode(text, text_pair, plan, **options)
        if text_target is not None:
            target_plan = plan if max_target_length is None else _Plan(plan.padding, plan.truncation,
                                                                       max_target_length)
            encoding["labels"] = self._encode(text_target, text_pair_target, target_plan, **options)["input_ids"]
        return encoding

    def _plan(self, padding, truncation, max_length, pad_to_multiple_of, verbose=True) -> _Plan:
        """transformers' `_get_padding_truncation_strategies`: the same rules, spelled as tokenizers takes them.
        Where they skip what was asked, the result is the same and, unless verbose=False, a warning says so."""
        padding, truncation = _plain(padding), _plain(truncation)
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"  # transformers: max_length alone turns truncation on
        if _is_bool(padding):
            padding = "longest" if padding else "do_not_pad"
        if truncation is None or _is_bool(truncation):
            truncation = "longest_first" if truncation else "do_not_truncate"
        if verbose and max_length is not None and padding != "max_length" and truncation == "do_not_truncate":
            warnings.warn(f"max_length={max_length} is ignored: nothing uses it without truncation or "
                          "padding='max_length' (as in transformers)", stacklevel=3)
        if max_length is None:
            known = self.model_max_length < LARGE_INTEGER
            for option, value in (("padding", padding), ("truncation", truncation)):
                if verbose and value in ("max_length", "longest_first", "only_first", "only_second") and not known:
                    warnings.warn(f"{option}={value!r} is skipped, as in transformers: there is no max_length and "
                                  "this tokenizer's files give no model_max_length", stacklevel=3)
            model_max_length = min(self.model_max_length, MAX_LENGTH)  # beyond u32 nothing is cut anyway
            if padding == "max_length":
                padding, max_length = ("max_length", model_max_length) if known else ("do_not_pad", None)
            if truncation != "do_not_truncate":
                truncation, max_length = (truncation, model_max_length) if known else ("do_not_truncate", max_length)
        if padding == "max_length" and max_length > MAX_PADDED_LENGTH:
            raise ValueError(f"padding='max_length' to {max_length} tokens a row is more than the "
                             f"{MAX_PADDED_LENGTH} allowed; pass a smaller max_length, or padding=True")
        if padding != "do_not_pad" and self.pad_token_id is None:
            raise ValueError(f"padding={padding!r} was asked for but this tokenizer has no pad token")
        if (truncation != "do_not_truncate" and padding != "do_not_pad" and pad_to_multiple_of is not None
                and max_length is not None and max_length % pad_to_multiple_of):
            raise ValueError(f"truncation to max_length={max_length} with padding to a multiple of "
                             f"pad_to_multiple_of={pad_to_multiple_of}: max_length must be a multiple of it")
        return _Plan(padding, truncation, None if max_length is None else int(max_length))

    def _encode(self, text, text_pair, plan: _Plan, *, add_special_tokens, stride, is_split_into_words,
                pad_to_multiple_of, padding_side, return_tensors, return_token_type_ids, return_attention_mask,
                return_overflowing_tokens, return_special_tokens_mask, return_offsets_mapping, return_length, verbose,
                split_special_tokens) -> BatchEncoding:
        """transformers' `TokenizersBackend._encode_plus`: tokenizers encodes, truncates and pads; this lays it out."""
        # pass 1: the batch tokenizers takes (one text becomes a batch of one; an empty pair of one text is dropped)
        inputs, is_batched = _as_batch(text, text_pair, is_split_into_words)
        if plan.truncation != "do_not_truncate" and add_special_tokens:
            n_special = self._backend.num_special_tokens_to_add(isinstance(inputs[0], tuple))
            if plan.max_length < n_special:
                raise ValueError(f"max_length={plan.max_length} is shorter than the {n_special} special tokens "
                                 f"added to each sequence; pass max_length >= {n_special}")

        # pass 2: tokenizers encodes with this call's truncation and padding, then forgets them
        with self._lock:
            try:
                if plan.truncation != "do_not_truncate":
                    self._backend.enable_truncation(plan.max_length, stride=stride, strategy=plan.truncation,
                                                    direction=self.truncation_side)
                if plan.padding != "do_not_pad":
                    self._backend.enable_padding(
                        direction=padding_side or self.padding_side, pad_id=self.pad_token_id,
                        pad_type_id=self.pad_token_type_id, pad_token=self.pad_token,
                        pad_to_multiple_of=pad_to_multiple_of,
                        length=plan.max_length if plan.padding == "max_length" else None)
                self._backend.encode_special_tokens = bool(self.split_special_tokens if split_special_tokens is None
                                                           else split_special_tokens)
                encodings = self._backend.encode_batch(inputs, add_special_tokens=add_special_tokens,
                                                       is_pretokenized=is_split_into_words)
            except Exception as error:  # tokenizers raises a bare Exception, e.g. only_second with no second text,
                # or a stride that leaves no room in a window
                raise ValueError(f"cannot encode with truncation={plan.truncation!r}, max_length={plan.max_length}, "
                                 f"stride={stride}: {error}") from None
            finally:
                self._backend.no_truncation()
                self._backend.no_padding()
                self._backend.encode_special_tokens = False

        # pass 3: transformers' keys, in its order; overflowing windows become rows of their own
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        fields = {"input_ids": lambda e: e.ids, "token_type_ids": lambda e: e.type_ids,
                  "attention_mask": lambda e: e.attention_mask, "special_tokens_mask": lambda e: e.special_tokens_mask,
                  "offset_mapping": lambda e: e.offsets, "length": lambda e: len(e.ids)}
        wanted = {"input_ids": True, "token_type_ids": return_token_type_ids,
                  "attention_mask": return_attention_mask, "special_tokens_mask": return_special_tokens_mask,
                  "offset_mapping": return_offsets_mapping, "length": return_length}
        rows, sample = [], []
        for i, encoding in enumerate(encodings):
            windows = [encoding] + (encoding.overflowing if return_overflowing_tokens else [])
            rows += windows
            sample += [i] * len(windows)
        data = {key: [fields[key](row) for row in rows] for key, on in wanted.items() if on}
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = sample
        if verbose and plan.max_length is None:
            self._warn_if_too_long(data["input_ids"])

        # pass 4: arrays when asked for; one text (without overflow) loses its batch axis, as in transformers
        n_sequences = rows[0].n_sequences if rows else None
        if return_tensors is not None:
            return BatchEncoding(_as_tensors(data, _plain(return_tensors)), rows, n_sequences)
        if not is_batched and not return_overflowing_tokens:
            data = {key: value[0] if value and isinstance(value[0], list) else value for key, value in data.items()}
        return BatchEncoding(data, rows, n_sequences)

    def _warn_if_too_long(self, rows) -> None:
        longest = max(map(len, rows), default=0)
        if longest > self.model_max_length and not self._warned_too_long:
            self._warned_too_long = True
            warnings.warn(f"a sequence of {longest} tokens is longer than this model's {self.model_max_length} "
                          "positions: pass truncation=True to cut it, or the model will fail on it", stacklevel=4)

    def pad(self, encoded_inputs, padding: bool | str = True, max_length: int | None = None,
            pad_to_multiple_of: int | None = None, padding_side: str | None = None,
            return_attention_mask: bool | None = None, return_tensors: str | None = None,
            verbose: bool = True) -> BatchEncoding:
        """Pad ids encoded already (a dict of lists or arrays, or a list of such dicts, e.g. in a collate_fn).

        Hand-written, as transformers' `pad`: tokenizers pads only the Encodings it makes itself.
        """
        _check(dict(padding=padding, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of,
                    padding_side=padding_side, return_attention_mask=return_attention_mask,
                    return_tensors=return_tensors, verbose=verbose), "pad: ")
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
            if not all(isinstance(e, Mapping) and e.keys() == encoded_inputs[0].keys() for e in encoded_inputs):
                raise ValueError("pad: a list of encodings must hold dicts with the same keys")
            encoded_inputs = {key: [e[key] for e in encoded_inputs] for key in encoded_inputs[0]}
        if not isinstance(encoded_inputs, Mapping) or "input_ids" not in encoded_inputs:
            raise ValueError("pad takes a dict (or a list of dicts) holding input_ids, got "
                             f"{type(encoded_inputs).__name__}: {_show(encoded_inputs)}")
        # Arrays come back as arrays unless return_tensors says otherwise (transformers' rule).
        first = encoded_inputs["input_ids"]
        first = first[0] if isinstance(first, (list, tuple)) and len(first) else first
        if return_tensors is None and not isinstance(first, (int, list, tuple)) and hasattr(first, "tolist"):
            return_tensors = "np" if isinstance(first, (np.ndarray, np.generic)) else "pt"
        inputs = {key: _as_lists(value, f"pad: {key}") for key, value in encoded_inputs.items()}
        ids = self._checked_ids(inputs["input_ids"], "pad: input_ids", depth=2)
        if not ids:
            return BatchEncoding(inputs)
        single = _is_int(ids[0])
        if single:
            inputs = {key: [value] for key, value in inputs.items()}
            ids = [ids]
        if any(len(value) != len(ids) for value in inputs.values()):
            raise ValueError(f"pad: every key must hold {len(ids)} rows, as input_ids does; got "
                             f"{ {key: len(value) for key, value in inputs.items()} }")
        plan = self._plan(padding, False, max_length, pad_to_multiple_of, verbose)
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        if return_attention_mask and "attention_mask" not in inputs:
            inputs["attention_mask"] = [[1] * len(row) for row in ids]
        for key in ("attention_mask", "token_type_ids", "special_tokens_mask"):
            if key in inputs and any(len(a) != len(b) for a, b in zip(inputs[key], ids)):
                raise ValueError(f"pad: {key} must have the length of input_ids in every row")

        target = max(map(len, ids), default=0) if plan.padding == "longest" else plan.max_length
        if target is not None and pad_to_multiple_of is not None and target % pad_to_multiple_of:
            target = (target // pad_to_multiple_of + 1) * pad_to_multiple_of
        if target is not None and target > MAX_PADDED_LENGTH and plan.padding != "do_not_pad":
            raise ValueError(f"pad: padding to {target} tokens a row is more than the {MAX_PADDED_LENGTH} allowed")
        fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": self.pad_token_type_id,
                "special_tokens_mask": 1}
        left = (padding_side or self.padding_side) == "left"
        for b, row in enumerate(ids):
            missing = 0 if plan.padding == "do_not_pad" else max(0, target - len(row))
            for key, value in fill.items():
                if key in inputs and missing:
                    pad = [value] * missing
                    inputs[key][b] = pad + list(inputs[key][b]) if left else list(inputs[key][b]) + pad
        if single:
            inputs = {key: value[0] for key, value in inputs.items()}
        return BatchEncoding(_as_tensors(inputs, _plain(return_tensors)) if return_tensors else inputs)

    # ----- decoding -----

    def decode(self, token_ids, skip_special_tokens: bool = False, *,
               clean_up_tokenization_spaces: bool | None = None) -> str | list[str]:
        """Ids back to text: one int or one sequence gives a str, a batch (list of lists, (B, N) array) a list."""
        _check(dict(skip_special_tokens=skip_special_tokens,
                    clean_up_tokenization_spaces=clean_up_tokenization_spaces))
        if isinstance(token_ids, Mapping) and "input_ids" in token_ids:
            token_ids = token_ids["input_ids"]
        ids = self._checked_ids(token_ids, "token_ids", depth=2)
        if isinstance(ids, list) and ids and isinstance(ids[0], list):
            return [self._decode(row, skip_special_tokens, clean_up_tokenization_spaces) for row in ids]
        return self._decode([ids] if isinstance(ids, int) else ids, skip_special_tokens, clean_up_tokenization_spaces)

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None) -> list[str]:
        result = self.decode(sequences, skip_special_tokens, clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        return [result] if isinstance(result, str) else result

    def _decode(self, ids: list[int], skip_special_tokens: bool, clean_up_tokenization_spaces: bool | None) -> str:
        text = self._backend.decode(ids, skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        # transformers skips the clean-up for BPE: it is written for WordPiece and would eat spaces before punctuation
        if clean_up_tokenization_spaces and type(self._backend.model).__name__ != "BPE":
            for spaced, joined in CLEAN_UP:
                text = text.replace(spaced, joined)
        return text

    def __repr__(self) -> str:
        return (f"LongformerTokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"len={len(self)}, model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
                f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map})")


# transformers' clean_up_tokenization, in its order
CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))

def _as_lists(value, name: str) -> list:
    """A row or a batch of rows (lists, arrays, tensors) as python lists, for pad()."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list (or an array) of ids or of rows of ids, got "
                         f"{type(value).__name__}: {_show(value)}")
    rows = [v.tolist() if hasattr(v, "tolist") and not isinstance(v, (list, tuple)) else v for v in value]
    for i, row in enumerate(rows):
        if isinstance(row, (list, tuple)):
            rows[i] = list(row)
        elif not _is_int(row):
            raise ValueError(f"{name}[{i}] must be an int or a row of ints, got {type(row).__name__}: {_show(row)}")
    return rows


# What tokenizer_config.json and special_tokens_map.json may hold, for the keys read here; other keys pass through.
_CONFIG_RULES = {
    "model_max_length": _Rule(lambda v: v is None or (isinstance(v, (int, float)) and not _is_bool(v) and v >= 1
                                                      and float(v).is_integer()), "a positive int or null"),
    "padding_side": _Rule(lambda v: v in SIDES, "'right' or 'left'"),
    "truncation_side": _Rule(lambda v: v in SIDES, "'right' or 'left'"),
    **{key: _Rule(lambda v: v is None or _is_bool(v), "true, false or null") for key in (
        "add_prefix_space", "trim_offsets", "clean_up_tokenization_spaces", "split_special_tokens")},
    **{f"{role}_token": _Rule(lambda v: v is None or (isinstance(v, str) and v) or _is_token_dict(v),
                              'a str, null, or {"content": str, "lstrip": bool, ...}')
       for role in SPECIAL_TOKEN_ROLES},
}


def _is_token_dict(value) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("content"), str) and value["content"] != ""
            and all(isinstance(value.get(flag, False), bool)
                    for flag in ("single_word", "lstrip", "rstrip", "normalized", "special")))


def _check_config(config: dict, path: str) -> None:
    for key, rule in _CONFIG_RULES.items():
        if key in config and not rule.test(config[key]):
            raise ValueError(f"{path}: {key} is {_show(config[key])}, but it must be {rule.allowed}")


def _as_tensors(data: dict, return_tensors: str) -> dict:
    """Lists to (B, N) int64 arrays ("np") or tensors ("pt"); a ragged batch is refused, not made an object array."""
    for key, value in data.items():
        lengths = {len(row) for row in value if isinstance(row, (list, tuple))}
        if len(lengths) > 1:
            raise ValueError(
                f"the texts give {key} of different lengths {sorted(lengths)}, and return_tensors="
                f"{return_tensors!r} cannot hold a ragged batch: pass padding=True (pads to the longest), or "
                "truncation=True with padding='max_length' and max_length")
    if return_tensors == "pt":
        try:
            import torch  # optional: only for return_tensors="pt"
        except ImportError:
            raise ValueError("return_tensors='pt' needs torch, which is not installed; use 'np'") from None
        return {key: torch.tensor(value, dtype=torch.int64) for key, value in data.items()}
    return {key: np.asarray(value, dtype=np.int64) for key, value in data.items()}  # (B, N), (B, N, 2), (B,)


def _as_batch(text, text_pair, is_split_into_words: bool) -> tuple[list, bool]:
    """Text (and pair) as the list tokenizers' encode_batch takes, and whether the input was a batch.

    Without is_split_into_words a text is a str and a batch a list of str; with it a text is a list of words and
    a batch a list of such lists. A pair is zipped into tuples; an empty pair of one text is dropped (transformers).
    """
    def check_one(value, name):
        if is_split_into_words:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{name} must be a list of words (str) with is_split_into_words=True, got "
                                 f"{type(value).__name__}: {_show(value)}")
            for j, word in enumerate(value):
                _check_str(word, f"{name}[{j}]")
            return list(value)
        _check_str(value, name)
        return value

    is_batched = isinstance(text, (list, tuple)) and (
        not is_split_into_words or (len(text) > 0 and isinstance(text[0], (list, tuple))))
    if not is_batched:
        if not isinstance(text, (str, list, tuple)):
            raise ValueError(f"text must be a str or a list of str, got {type(text).__name__}: {_show(text)}")
        one = check_one(text, "text")
        if text_pair is None or (isinstance(text_pair, (str, list, tuple)) and len(text_pair) == 0):
            return [one], False
        return [(one, check_one(text_pair, "text_pair (with one text, one text)"))], False
    if len(text) == 0:
        raise ValueError("text is an empty list: pass at least one text")
    texts = [check_one(item, f"text[{i}]") for i, item in enumerate(text)]
    if text_pair is None:
        return texts, True
    if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
        raise ValueError(f"with a batch of {len(text)} texts, text_pair must be a list of {len(text)} texts, "
                         f"got {type(text_pair).__name__}: {_show(text_pair)}")
    return [(a, check_one(b, f"text_pair[{i}]")) for i, (a, b) in enumerate(zip(texts, text_pair))], True


def _roberta_backend(vocab_path: str, merges_path: str, add_prefix_space: bool) -> Tokenizer:
    """What transformers' RobertaTokenizer builds from vocab.json + merges.txt (its post-processor is set later)."""
    vocab = read_json(vocab_path, missing_ok=False)  # names the file if it is not UTF-8 JSON
    bad = next(((token, i) for token, i in vocab.items() if not _is_int(i) or i < 0), None)
    if bad is not None:
        raise ValueError(f"{vocab_path}: the id of {bad[0]!r} is {_show(bad[1])}; a vocabulary maps each token to "
                         "an int >= 0")
    try:
        _, merges = BPE.read_file(vocab_path, merges_path)
    except Exception as error:  # vocab.json is known good here, so the problem is merges.txt
        raise ValueError(f"could not read {merges_path}: {error}") from None
    model = BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bool(add_prefix_space))
    backend.decoder = decoders.ByteLevel()
    return backend


def _add_legacy_added_tokens(backend: Tokenizer, path: str, special: set[str]) -> None:
    """added_tokens.json, as older checkpoints save their added tokens ({"<ent>": 50265}): added in id order, each
    where the file says (transformers reads it too). A special token among them is matched whole; the others are
    normalized, as transformers adds them."""
    added = read_json(path)
    for token, token_id in added.items():
        if not token or not _is_int(token_id) or token_id < 0:
            raise ValueError(f"{path}: {token!r} has id {_show(token_id)}; the file maps each token to an id >= 0")
    for token, token_id in sorted(added.items(), key=lambda item: item[1]):
        if backend.token_to_id(token) is None:
            backend.add_tokens([AddedToken(token, normalized=token not in special, special=token in special)])
        if backend.token_to_id(token) != token_id:
            raise ValueError(f"{path} gives {token!r} the id {token_id}, but the vocabulary holds it at "
                             f"{backend.token_to_id(token)}; the ids of added tokens follow the vocabulary's")


def _set_prefix_space(backend: Tokenizer, add_prefix_space: bool, trim_offsets: bool) -> None:
    """What transformers' RobertaTokenizer does with add_prefix_space, on a tokenizer.json that has the steps."""
    if isinstance(backend.pre_tokenizer, pre_tokenizers.ByteLevel):
        backend.pre_tokenizer.add_prefix_space = add_prefix_space
    post_processor = json.loads(backend.to_str()).get("post_processor") or {}
    if post_processor.get("type") == "RobertaProcessing":
        backend.post_processor = processors.RobertaProcessing(
            tuple(post_processor["sep"]), tuple(post_processor["cls"]), trim_offsets=trim_offsets,
            add_prefix_space=add_prefix_space)


def _special_tokens_in_tokenizer_json(backend: Tokenizer) -> dict[str, str]:
    """The cls and sep tokens around sequence A in the post-processor, the unk of the model, the pad of the padding."""
    found = {}
    tokenizer_json = json.loads(backend.to_str())
    unk = (tokenizer_json.get("model") or {}).get("unk_token")
    if isinstance(unk, str):
        found["unk"] = unk
    pad = (tokenizer_json.get("padding") or {}).get("pad_token")
    if isinstance(pad, str):
        found["pad"] = pad
    post_processor = tokenizer_json.get("post_processor") or {}
    for step in post_processor.get("processors", [post_processor]):  # a "Sequence" post-processor lists its steps
        if step.get("type") in ("RobertaProcessing", "BertProcessing"):
            found["cls"], found["sep"] = step["cls"][0], step["sep"][0]
        elif step.get("type") == "TemplateProcessing":
            template = step["single"]  # e.g. [CLS] $A [SEP]
            a = next(i for i, piece in enumerate(template) if "Sequence" in piece)
            if a > 0 and "SpecialToken" in template[a - 1]:
                found["cls"] = template[a - 1]["SpecialToken"]["id"]
            if a + 1 < len(template) and "SpecialToken" in template[a + 1]:
                found["sep"] = template[a + 1]["SpecialToken"]["id"]
    return found


def _token_text(value) -> str:
    """A special token as the config files write it: a string, or a dict with its "content" (and flags)."""
    return value["content"] if isinstance(value, dict) else value


def _added_token(value) -> AddedToken:
    if isinstance(value, dict):  # {"content": "<mask>", "lstrip": true, ...}, as older checkpoints save it
        return AddedToken(value["content"], single_word=value.get("single_word", False),
                          lstrip=value.get("lstrip", False), rstrip=value.get("rstrip", False),
                          normalized=value.get("normalized", False), special=True)
    return AddedToken(value, normalized=False, special=True)
