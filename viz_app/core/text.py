"""Text in: the shipped samples, tokenization with character offsets, what truncation cut, sentence starts, and
finding a word among the tokens. No streamlit here.

Legend: N tokens.
"""

from __future__ import annotations

import inspect
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
# the explorer's sample documents: label -> file. A file whose first line is a question ending in "?", followed by
# a blank line, is a question + context pair.
#   abstract.txt          written for this project (about 110 tokens)
#   question_context.txt  a question written for this project, on three paragraphs of the long document
#   long_document.txt     Lewis Carroll, Alice's Adventures in Wonderland (1865, public domain): chapter I and the
#                         first part of chapter II, from the Millennium Fulcrum Edition 2.9 (Project Gutenberg; the
#                         Canterbury corpus' alice29.txt), lines unwrapped, `quotes' written 'quotes'. About 4,900
#                         tokens for all-MiniLM-L6-v2's tokenizer: more than 4,096, so the page shows truncation.
LONG_SAMPLE = "Long document (Alice in Wonderland, ch. I-II)"
SAMPLES = {
    "Short abstract": "abstract.txt",
    "Question + context": "question_context.txt",
    LONG_SAMPLE: "long_document.txt",
}
OWN_TEXT = "Your own text"


def load_sample(label: str) -> tuple[str, str]:
    """(text, pair) of a shipped sample; pair is "" unless the sample is a question + context."""
    raw = (SAMPLES_DIR / SAMPLES[label]).read_text(encoding="utf-8").strip()
    first, _, rest = raw.partition("\n\n")
    if first.rstrip().endswith("?") and "\n" not in first:
        return first.strip(), rest.strip()
    return raw, ""


@dataclass(frozen=True)
class Encoded:
    """One tokenized input, as the model sees it."""

    input_ids: np.ndarray  # (N,) int64
    offsets: np.ndarray  # (N, 2) characters [start, end) in the text of the token's segment; (0, 0) for specials
    segment: np.ndarray  # (N,) 0 for the text, 1 for the pair (after the first separator)
    tokens: tuple[str, ...]  # the tokens as the vocabulary writes them
    surfaces: tuple[str, ...]  # the characters each token covers in its text (the token itself for specials)
    n_untruncated: int  # tokens before truncation to the position table
    segment_lengths: tuple[int, int]  # tokens of the text and of the pair before truncation, specials excluded
    max_tokens: int  # what the position table holds

    @property
    def n(self) -> int:
        return len(self.input_ids)

    @property
    def is_special(self) -> np.ndarray:
        return self.offsets[:, 0] == self.offsets[:, 1]  # (N,) separators and the like cover no characters

    @property
    def has_pair(self) -> bool:
        return bool(self.segment.any())

    def label(self, j: int) -> str:
        """How a token is named everywhere in the app: its position and its text, e.g. `1,960 'rabbit'`."""
        return f"{j:,} {self.surfaces[j]!r}"


def _tokenize(tokenizer, text, pair, **kwargs):
    """(input_ids (N,), offsets (N, 2) or None) of one text. refimpl's tokenizer is moving to transformers'
    conventions (python lists unless return_tensors="np", offsets under "offset_mapping"); ask for arrays where it
    understands the request, and read what it gives either way."""
    if "return_tensors" in inspect.signature(tokenizer.__call__).parameters:
        kwargs["return_tensors"] = "np"
    with warnings.catch_warnings():  # counting the tokens before truncation is the point of the untruncated call
        warnings.simplefilter("ignore", UserWarning)
        out = tokenizer(text, pair, **kwargs)
    ids = np.asarray(out["input_ids"], dtype=np.int64).reshape(-1)  # (N,): one text, as a batch of one or not
    spans = out.get("offset_mapping", out.get("offsets"))  # transformers' name, and the earlier one
    offsets = None if spans is None else np.asarray(spans, dtype=np.int64).reshape(-1, 2)  # (N, 2)
    return ids, offsets


def encode(tokenizer, text: str, pair: str, max_tokens: int) -> Encoded:
    """Tokenize `text` (and `pair`, when not empty) with truncation to the position table. ValueError if empty."""
    if not text.strip():
        raise ValueError("The text is empty: type or paste a text, or pick a sample.")
    pair = pair if pair.strip() else None
    full = len(_tokenize(tokenizer, text, pair)[0])
    lengths = tuple(0 if s is None else len(_tokenize(tokenizer, s, None, add_special_tokens=False)[0])
                    for s in (text, pair))
    ids, offsets = _tokenize(tokenizer, text, pair, truncation=True, max_length=max_tokens,
                             return_offsets_mapping=True)
    segment = np.zeros(len(ids), dtype=np.int64)
    if pair is not None:
        sep = np.flatnonzero(ids == tokenizer.sep_token_id)
        if len(sep):
            segment[sep[0] + 1:] = 1
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids.tolist()))
    sources = (text, pair or "")
    surfaces = tuple(tok if s == e else sources[g][s:e] for tok, (s, e), g in zip(tokens, offsets, segment,
                                                                                  strict=True))
    return Encoded(ids, offsets, segment, tokens, surfaces, full, lengths, max_tokens)


def truncation_note(enc: Encoded, text: str, pair: str) -> str | None:
    """What truncation cut, segment by segment, in words a user can act on; None when nothing was cut.
    With a pair, truncation cuts the longer of the two first, so either text (or both) may have lost its end."""
    if enc.n_untruncated <= enc.n:
        return None
    words = []
    for s, source in enumerate((text, pair)):
        kept_tokens = (enc.segment == s) & ~enc.is_special
        lost = enc.segment_lengths[s] - int(kept_tokens.sum())
        if lost <= 0 or not source.strip():
            continue
        kept = enc.offsets[kept_tokens]
        end = int(kept[:, 1].max()) if len(kept) else 0
        tail = " ".join(source[max(0, end - 60):end].split())
        name = "the text" if s == 0 else "the second text"
        words.append(f"{name} lost its last {lost:,} tokens and now ends at character {end:,} of {len(source):,} "
                     f"(…{tail})")
    return (f"The input has {enc.n_untruncated:,} tokens but this model's position table holds {enc.max_tokens:,}: "
            f"{'; '.join(words)}.")


SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s+")
WORDLIKE = re.compile(r"\w")


def sentence_starts(enc: Encoded, text: str, pair: str) -> list[int]:
    """The first word token of every sentence of each segment (a sentence ends at . ! or ? followed by a space).
    Opening quotes and brackets before the first word are skipped: the sentence starts at its first word."""
    starts = []
    wordlike = np.array([bool(WORDLIKE.search(s)) for s in enc.surfaces])  # (N,)
    for s, source in enumerate((text, pair)):
        tokens = np.flatnonzero((enc.segment == s) & ~enc.is_special & wordlike)  # (word tokens of segment s,)
        if not len(tokens):
            continue
        chars = [0] + [m.end() for m in SENTENCE_END.finditer(source)]
        first = np.searchsorted(enc.offsets[tokens, 0], chars)  # the first word token at or after each start
        starts.extend(int(tokens[k]) for k in np.unique(first) if k < len(tokens))
    return sorted(starts)


def context(enc: Encoded, text: str, pair: str, j: int, chars: int = 24) -> str:
    """Token j in its text, with about `chars` characters on each side: '…sister on the bank, and of…'."""
    if enc.is_special[j]:
        return enc.tokens[j]
    source = (text, pair)[enc.segment[j]]
    s, e = (int(x) for x in enc.offsets[j])
    before, after = source[max(0, s - chars):s], source[e:e + chars]
    return " ".join(f"…{before}[{source[s:e]}]{after}…".split())


def find(enc: Encoded, text: str, pair: str, query: str, limit: int = 200) -> list[int]:
    """Token positions where `query` (a word, a subword or several words; case-insensitive) occurs: the first token
    of each match in the text, or a token whose vocabulary form matches (e.g. '##former')."""
    query = query.strip()
    if not query:
        return []
    hits = []
    needle = query.lower()
    for s, source in enumerate((text, pair)):
        tokens = np.flatnonzero((enc.segment == s) & ~enc.is_special)
        if not len(tokens) or not source:
            continue
        ends = enc.offsets[tokens, 1]
        for m in re.finditer(re.escape(needle), source.lower()):
            k = int(np.searchsorted(ends, m.start(), side="right"))  # the token covering the match's first char
            if k < len(tokens):
                hits.append(int(tokens[k]))
    hits += [j for j, tok in enumerate(enc.tokens) if tok.lower() == needle]
    return sorted(set(hits))[:limit]
