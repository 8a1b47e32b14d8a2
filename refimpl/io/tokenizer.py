"""The tokenizer: text to the int64 `input_ids` and `attention_mask` arrays the model reads.

It follows transformers' `LongformerTokenizerFast`, which in transformers 5 is an alias of `RobertaTokenizer`:
Longformer (Beltagy, Peters, Cohan 2020, arXiv 2004.05150) keeps RoBERTa's byte-level BPE unchanged. Every
encoding step is done by the `tokenizers` library, the same Rust code transformers calls, so the ids are the same;
this file only loads the files, checks the arguments and lays the result out as NumPy arrays. It imports neither
torch nor transformers.

    one text      <s> A </s>
    a pair        <s> A </s></s> B </s>

From `vocab.json` + `merges.txt` it builds what transformers builds: a BPE model, the ByteLevel pre-tokenizer
(add_prefix_space=False, so "Hello" and " Hello" get different ids), the ByteLevel decoder and the RobertaProcessing
post-processor. A `tokenizer.json` is loaded as it is, whatever model it holds (a BERT WordPiece one too, e.g.
all-MiniLM-L6-v2's `[CLS] A [SEP]`): its post-processor decides which tokens wrap a sequence.

Deliberately different from transformers:
- The result holds NumPy int64 arrays (B, N), also for one text (1, N). Lengths that differ without padding raise
  ValueError, because a NumPy array cannot be ragged (transformers returns lists).
- No `token_type_ids` (Longformer has one segment type), no left padding or truncation, no stride or overflow, no
  pre-tokenized input, no `return_tensors`. Character offsets come as `offsets`, only when asked for.
- Where transformers warns or silently does something else, this raises ValueError: `padding="max_length"` without
  `max_length` (transformers falls back to model_max_length), a `max_length` that neither truncation nor padding uses
  (transformers turns truncation on, or ignores it), truncation with no `max_length` and no known model_max_length
  (transformers skips truncation), a `max_length` shorter than the special tokens (tokenizers then returns the
  sequence untruncated).
- `text_pair=""` with one text is a pair, as it is in a batch (transformers drops an empty pair for one text only).
- An unknown model_max_length is None, not transformers' 1e30 stand-in.
- `decode` never applies `clean_up_tokenization_spaces` (transformers' default is off too, and it skips it for BPE).

Legend: B batch, N sequence length (tokens, special tokens included).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from refimpl.io.jsonfile import read_json

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"

# transformers' order of the named special tokens; a token missing from the vocabulary is appended in this order.
SPECIAL_TOKEN_ROLES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
ROBERTA_SPECIAL_TOKENS = {
    "bos": "<s>",
    "eos": "</s>",
    "unk": "<unk>",
    "sep": "</s>",
    "pad": "<pad>",
    "cls": "<s>",
    "mask": "<mask>",
}

PADDING_CHOICES = (False, True, "longest", "max_length", "do_not_pad")
TRUNCATION_CHOICES = (False, True, "longest_first", "only_first", "only_second", "do_not_truncate")
# transformers writes int(1e30) as model_max_length when a checkpoint does not know its own; above this means unknown.
UNKNOWN_MAX_LENGTH = int(1e20)


class BatchEncoding(dict):
    """What a call returns: `input_ids` (B, N) and `attention_mask` (B, N) int64, `offsets` (B, N, 2) int64 when asked.

    A dict, so `model(**encoding)` works; the keys also read as attributes, as in transformers. In a pair, the
    offsets of B's tokens index into B's own text.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class _Options:
    """One call's padding and truncation, checked and spelled one way."""

    padding: str | None  # None, "longest" or "max_length"
    truncation: str | None  # None, "longest_first", "only_first" or "only_second"
    max_length: int | None


class LongformerTokenizer:
    """RoBERTa's byte-level BPE as Longformer uses it, on top of a `tokenizers.Tokenizer`.

    Build one with `LongformerTokenizer.from_pretrained(directory)`. `special_tokens` maps a role ("bos", "eos",
    "unk", "sep", "pad", "cls", "mask") to its token text; roles this tokenizer lacks are absent, and their `*_id`
    is None.
    """

    def __init__(self, backend: Tokenizer, special_tokens: dict[str, str], model_max_length: int | None = None,
                 config: dict | None = None):
        self._backend = backend
        # The backend's truncation is set per call; a lock keeps two threads (Streamlit reruns) from mixing settings.
        self._lock = threading.Lock()
        self._backend.no_truncation()
        self._backend.no_padding()  # padding is done here, in NumPy
        self.special_tokens = dict(special_tokens)
        self.model_max_length = model_max_length
        self._config = dict(config or {})  # the tokenizer_config.json read, kept so save_pretrained writes it back

    # ----- loading and saving -----

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, model_max_length: int | None = None) -> LongformerTokenizer:
        """Load from a directory: `tokenizer.json` if there is one, else `vocab.json` + `merges.txt`.

        `tokenizer_config.json` and `special_tokens_map.json`, when present, name the special tokens and give
        `model_max_length`; the argument `model_max_length` overrides theirs.
        """
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise ValueError(f"no tokenizer directory at {directory!r}: pass a directory that holds "
                             f"{TOKENIZER_FILE}, or {VOCAB_FILE} and {MERGES_FILE}")
        config = read_json(os.path.join(directory, CONFIG_FILE))
        special_tokens_map = read_json(os.path.join(directory, SPECIAL_TOKENS_FILE))
        # special_tokens_map.json wins over tokenizer_config.json, as in transformers
        named = {role: config[f"{role}_token"] for role in SPECIAL_TOKEN_ROLES if config.get(f"{role}_token")}
        named.update({role: special_tokens_map[f"{role}_token"] for role in SPECIAL_TOKEN_ROLES
                      if special_tokens_map.get(f"{role}_token")})

        tokenizer_path = os.path.join(directory, TOKENIZER_FILE)
        vocab_path = os.path.join(directory, VOCAB_FILE)
        merges_path = os.path.join(directory, MERGES_FILE)
        if os.path.isfile(tokenizer_path):
            try:
                backend = Tokenizer.from_file(tokenizer_path)
            except Exception as error:  # tokenizers raises a bare Exception for a file it cannot parse
                raise ValueError(f"could not read {tokenizer_path}: {error}") from error
            # Roles the files do not name: first what tokenizer.json itself says, then RoBERTa's names where the
            # vocabulary has them (so a BERT tokenizer.json does not get a "<mask>" it lacks).
            guessed = {**ROBERTA_SPECIAL_TOKENS, **_special_tokens_in_tokenizer_json(backend)}
            guessed = {role: token for role, token in guessed.items() if backend.token_to_id(token) is not None}
        elif os.path.isfile(vocab_path) and os.path.isfile(merges_path):
            backend = _roberta_backend(vocab_path, merges_path, add_prefix_space=bool(config.get("add_prefix_space")))
            guessed = dict(ROBERTA_SPECIAL_TOKENS)  # transformers adds these even where the vocabulary lacks them
        else:
            found = sorted(os.listdir(directory))
            raise ValueError(f"no tokenizer files in {directory!r}: looked for {TOKENIZER_FILE}, or {VOCAB_FILE} "
                             f"and {MERGES_FILE} together; found {found}")

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

        if backend.post_processor is None and "cls" in special_tokens and "sep" in special_tokens:
            # the vocab.json route: <s> A </s> and <s> A </s></s> B </s>, with the ids the vocabulary gives
            cls_text, sep_text = special_tokens["cls"], special_tokens["sep"]
            backend.post_processor = processors.RobertaProcessing(
                (sep_text, backend.token_to_id(sep_text)),
                (cls_text, backend.token_to_id(cls_text)),
                trim_offsets=bool(config.get("trim_offsets", True)),
                add_prefix_space=bool(config.get("add_prefix_space", False)),
            )

        if model_max_length is None:
            model_max_length = config.get("model_max_length")
        if model_max_length is not None and model_max_length >= UNKNOWN_MAX_LENGTH:
            model_max_length = None
        return cls(backend, special_tokens, None if model_max_length is None else int(model_max_length), config)

    def save_pretrained(self, directory: str | os.PathLike) -> tuple[str, str, str]:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; returns their paths.

        The files load back here and in transformers (`AutoTokenizer` needs the checkpoint's `tokenizer_class`,
        kept from the config read).
        """
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        tokenizer_json = json.loads(self._backend.to_str())
        tokenizer_json["truncation"] = None  # per-call settings are not part of the tokenizer
        tokenizer_json["padding"] = None
        config = dict(self._config)
        config.update({f"{role}_token": text for role, text in self.special_tokens.items()})
        config.pop("model_max_length", None)
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        special_tokens_map = {f"{role}_token": text for role, text in self.special_tokens.items()}

        paths = tuple(os.path.join(directory, name) for name in (TOKENIZER_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE))
        for path, content in zip(paths, (tokenizer_json, config, special_tokens_map)):
            with open(path, "w", encoding="utf-8") as file:
                json.dump(content, file, indent=2, ensure_ascii=False)
                file.write("\n")
        return paths

    # ----- the vocabulary -----

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens (transformers' `vocab_size`)."""
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included (transformers' `len(tokenizer)`)."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    def _special_token_id(self, role: str) -> int | None:
        text = self.special_tokens.get(role)
        return None if text is None else self._backend.token_to_id(text)

    @property
    def bos_token_id(self) -> int | None:
        return self._special_token_id("bos")

    @property
    def eos_token_id(self) -> int | None:
        return self._special_token_id("eos")

    @property
    def unk_token_id(self) -> int | None:
        return self._special_token_id("unk")

    @property
    def sep_token_id(self) -> int | None:
        return self._special_token_id("sep")

    @property
    def pad_token_id(self) -> int | None:
        return self._special_token_id("pad")

    @property
    def cls_token_id(self) -> int | None:
        return self._special_token_id("cls")

    @property
    def mask_token_id(self) -> int | None:
        return self._special_token_id("mask")

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        """Token text to id; a token outside the vocabulary gives `unk_token_id` (None if there is no unk token)."""
        if isinstance(tokens, str):
            token_id = self._backend.token_to_id(tokens)
            return self.unk_token_id if token_id is None else token_id
        return [self.convert_tokens_to_ids(token) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Id to token text, in the model's own alphabet (byte-level BPE writes a space as "Ġ")."""
        if isinstance(ids, (int, np.integer)):
            return self._backend.id_to_token(int(ids))
        special_ids = {i for i, token in self._backend.get_added_tokens_decoder().items() if token.special}
        return [self._backend.id_to_token(int(i)) for i in ids if not (skip_special_tokens and int(i) in special_ids)]

    # ----- encoding -----

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text, without special tokens."""
        _check_text(text, "text")
        return self._backend.encode(text, add_special_tokens=False).tokens

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True,
               truncation: bool | str = False, max_length: int | None = None) -> list[int]:
        """The ids of one text (or one pair), as a list; no padding."""
        _check_text(text, "text")
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        encoding = self(text, text_pair, add_special_tokens=add_special_tokens, truncation=truncation,
                        max_length=max_length)
        return encoding["input_ids"][0].tolist()

    def __call__(self, text: str | list[str], text_pair: str | list[str] | None = None, add_special_tokens: bool = True,
                 padding: bool | str = False, truncation: bool | str = False, max_length: int | None = None,
                 return_offsets_mapping: bool = False) -> BatchEncoding:
        """Tokenize a text or a batch of texts (and their pairs) into (B, N) int64 arrays.

        padding     False: every row must already have the same length; True or "longest": pad to the longest row;
                    "max_length": pad to max_length. Padding goes on the right, with pad_token_id and mask 0.
        truncation  False, or True / "longest_first" (cut the longer of a pair first), "only_first", "only_second":
                    cut to max_length (model_max_length when max_length is None), special tokens included.
        """
        # pass 1: check the arguments and bring one text to a batch of one
        texts, pairs = _as_batch(text, text_pair)
        options = self._check_options(padding, truncation, max_length, add_special_tokens, is_pair=pairs is not None)

        # pass 2: encode with tokenizers, which also truncates
        inputs = texts if pairs is None else list(zip(texts, pairs))
        with self._lock:
            if options.truncation is None:
                self._backend.no_truncation()
            else:
                self._backend.enable_truncation(options.max_length, strategy=options.truncation, direction="right")
            try:
                encodings = self._backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
            except Exception as error:  # tokenizers raises a bare Exception, e.g. when only_second has no second text
                if options.truncation is None:
                    raise
                raise ValueError(f"cannot truncate with truncation={options.truncation!r} and "
                                 f"max_length={options.max_length}: {error}") from error
            finally:
                self._backend.no_truncation()

        # pass 3: lay the rows out on the right of (B, N) arrays, padding after them
        lengths = [len(encoding.ids) for encoding in encodings]
        if options.padding == "longest":
            row_lengths = [max(lengths)] * len(lengths)
        elif options.padding == "max_length":
            row_lengths = [max(length, options.max_length) for length in lengths]  # a longer row stays longer
        else:
            row_lengths = lengths
        if len(set(row_lengths)) > 1:
            raise ValueError(
                f"the texts give sequences of different lengths {lengths} and NumPy arrays cannot be ragged: pass "
                f"padding=True (pads to the longest), or truncation=True with padding='max_length' and max_length")
        B, N = len(encodings), row_lengths[0]
        pad_id = 0 if options.padding is None else self.pad_token_id  # without padding no slot is left to fill
        input_ids = np.full((B, N), pad_id, dtype=np.int64)  # (B, N)
        attention_mask = np.zeros((B, N), dtype=np.int64)  # (B, N) 1 for a token, 0 for padding
        offsets = np.zeros((B, N, 2), dtype=np.int64)  # (B, N, 2) [start, end) characters; (0, 0) for special tokens
        for b, encoding in enumerate(encodings):
            n = lengths[b]
            input_ids[b, :n] = encoding.ids
            attention_mask[b, :n] = encoding.attention_mask
            if n:
                offsets[b, :n] = encoding.offsets
        result = BatchEncoding(input_ids=input_ids, attention_mask=attention_mask)
        if return_offsets_mapping:
            result["offsets"] = offsets
        return result

    def _check_options(self, padding, truncation, max_length, add_special_tokens, is_pair) -> _Options:
        """Spell padding and truncation one way, and refuse what transformers would warn about or silently skip."""
        if not _is_choice(padding, PADDING_CHOICES):
            raise ValueError(f"padding={padding!r} is not one of {PADDING_CHOICES}")
        if not _is_choice(truncation, TRUNCATION_CHOICES):
            raise ValueError(f"truncation={truncation!r} is not one of {TRUNCATION_CHOICES}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer))
                                       or max_length <= 0):
            raise ValueError(f"max_length={max_length!r} must be a positive int or None")
        padding = {False: None, "do_not_pad": None, True: "longest"}.get(padding, padding)
        truncation = {False: None, "do_not_truncate": None, True: "longest_first"}.get(truncation, truncation)

        if padding is not None and self.pad_token_id is None:
            raise ValueError("padding was asked for but this tokenizer has no pad token")
        if padding == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs max_length (or use padding=True to pad to the longest)")
        if truncation is not None and max_length is None:
            if self.model_max_length is None:
                raise ValueError(f"truncation={truncation!r} needs max_length: this tokenizer's files give no "
                                 "model_max_length")
            max_length = self.model_max_length
        if max_length is not None and truncation is None and padding != "max_length":
            raise ValueError(f"max_length={max_length} is used by nothing: pass truncation=True to cut to it, or "
                             "padding='max_length' to pad to it")
        if truncation is not None and add_special_tokens and self._backend.post_processor is not None:
            n_special = self._backend.post_processor.num_special_tokens_to_add(is_pair)
            if max_length < n_special:
                raise ValueError(f"max_length={max_length} is shorter than the {n_special} special tokens added to "
                                 f"each {'pair' if is_pair else 'text'}; pass max_length >= {n_special}")
        max_length = None if max_length is None else int(max_length)
        return _Options(padding=padding, truncation=truncation, max_length=max_length)

    # ----- decoding -----

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids (a list, a 1-D array or one int) back to text; skip_special_tokens drops <s>, </s>, <pad> and such."""
        ids = np.asarray(ids)
        if ids.ndim > 1:
            raise ValueError(f"decode takes one sequence of ids, got an array of shape {ids.shape}: decode each row")
        return self._backend.decode([int(i) for i in ids.reshape(-1)], skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        return (f"LongformerTokenizer(vocab_size={self.vocab_size}, len={len(self)}, "
                f"model_max_length={self.model_max_length}, special_tokens={self.special_tokens})")


def _roberta_backend(vocab_path: str, merges_path: str, add_prefix_space: bool) -> Tokenizer:
    """What transformers' RobertaTokenizer builds from vocab.json + merges.txt (its post-processor is set later)."""
    model = BPE.from_file(vocab_path, merges_path, dropout=None, continuing_subword_prefix="", end_of_word_suffix="",
                          fuse_unk=False)
    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    backend.decoder = decoders.ByteLevel()
    return backend


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


def _token_text(value) -> str | None:
    """A special token as the config files write it: a string, or a dict with its "content" (and flags)."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def _added_token(value) -> AddedToken:
    if isinstance(value, dict):  # {"content": "<mask>", "lstrip": true, ...}, as older checkpoints save it
        return AddedToken(value["content"], single_word=value.get("single_word", False),
                          lstrip=value.get("lstrip", False), rstrip=value.get("rstrip", False),
                          normalized=value.get("normalized", False), special=True)
    return AddedToken(value, normalized=False, special=True)


def _is_choice(value, choices) -> bool:
    """`value in choices` for choices of False, True and strings, except that 0 and 1 do not pass for a bool."""
    return isinstance(value, bool) or (isinstance(value, str) and value in choices)


def _check_text(text, name: str) -> None:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a str, got {type(text).__name__}: {text!r:.80}")


def _as_batch(text, text_pair) -> tuple[list[str], list[str] | None]:
    """One text (and pair) to a batch of one; a batch is checked element by element."""
    if isinstance(text, str):
        if text_pair is not None:
            _check_text(text_pair, "text_pair (with one text, one str)")
        return [text], None if text_pair is None else [text_pair]
    if not isinstance(text, (list, tuple)):
        raise ValueError(f"text must be a str or a list of str, got {type(text).__name__}: {text!r:.80}")
    if len(text) == 0:
        raise ValueError("text is an empty list: pass at least one text")
    for i, item in enumerate(text):
        _check_text(item, f"text[{i}]")
    if text_pair is None:
        return list(text), None
    if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
        raise ValueError(f"with a batch of {len(text)} texts, text_pair must be a list of {len(text)} str, "
                         f"got {type(text_pair).__name__}")
    for i, item in enumerate(text_pair):
        _check_text(item, f"text_pair[{i}]")
    return list(text), list(text_pair)
