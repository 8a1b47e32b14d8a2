"""What the attention explorer computes: text to tokens, the choice of global tokens, one forward pass, and the
attention laid out for drawing. No streamlit here: `viz_app/views/explorer.py` wires widgets to these functions and
caches what they return.

The model (refimpl/model.py) gives, per layer,
    local   (H, N, G + 2W + 1)  the G global columns first, then band slot t = key i + t - W
    glob    (H, N, G) or None   column s: what the s-th global token attends to (its whole row)
and nothing here is N x N except one head's matrix at a time (`attention_matrix`), which a 4096-token document can
afford (4096^2 float32 = 64 MB) and which is block-max downsampled before it is drawn, so that a one-token-wide
diagonal or global stripe survives the downsampling (a mean would fade it).

Legend: N tokens, H heads, L layers, W one-sided window (window // 2), G global tokens.
"""

from __future__ import annotations

import html
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refimpl.attention import GLOBAL, LOCAL
from refimpl.backends import asnumpy, available_backends, get_backend
from refimpl.config import LongformerConfig
from refimpl.dense import outputs_to_dense
from refimpl.model import LongformerModel

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
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

GLOBAL_PRESETS = ("none", "first token", "question (before the first separator)", "every sentence start")
# full windows (both sides) offered by the window control; the checkpoint's own windows are added to these
WINDOW_CHOICES = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
EXACT_LIMIT = 512  # up to this many tokens the matrix is drawn cell for cell; above it, block-max downsampled
MODEL_VIEW_LIMIT = 512  # the layers x heads view computes every layer's N x N matrices: short inputs only
MODEL_VIEW_CELLS = 64  # each small multiple is at most this many cells a side
FLOAT32_LIMIT = 1024  # results of longer inputs are kept as float16 (3 significant digits, plenty to draw)
# each global token adds a column to every row (and a row): memory grows as N x G, so G is capped (the paper uses few)
MAX_GLOBAL = 256


# ---------------------------------------------------------------------------------------------------------------
# Text in: samples and tokenization
# ---------------------------------------------------------------------------------------------------------------

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
    n_untruncated: int  # tokens before truncation to the position table
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


def encode(tokenizer, text: str, pair: str, max_tokens: int) -> Encoded:
    """Tokenize `text` (and `pair`, when not empty) with truncation to the position table. ValueError if empty."""
    if not text.strip():
        raise ValueError("The text is empty: type or paste a text, or pick a sample.")
    pair = pair if pair.strip() else None
    full = tokenizer(text, pair)["input_ids"].shape[1]
    enc = tokenizer(text, pair, truncation=True, max_length=max_tokens, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"][0], enc["offsets"][0]
    segment = np.zeros(len(ids), dtype=np.int64)
    if pair is not None:
        sep = np.flatnonzero(ids == tokenizer.sep_token_id)
        if len(sep):
            segment[sep[0] + 1:] = 1
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids.tolist()))
    return Encoded(ids, offsets, segment, tokens, full, max_tokens)


def truncation_note(enc: Encoded, text: str, pair: str) -> str | None:
    """What truncation cut, in words a user can act on; None when nothing was cut."""
    if enc.n_untruncated <= enc.n:
        return None
    cut = enc.n_untruncated - enc.n
    words = []
    for s, source in enumerate((text, pair)):
        kept = enc.offsets[(enc.segment == s) & ~enc.is_special]
        if not source.strip() or not len(kept):
            continue
        end = int(kept[:, 1].max())
        if end < len(source.rstrip()):
            tail = " ".join(source[max(0, end - 60):end].split())
            name = "the text" if s == 0 else "the second text"
            words.append(f"{name} now ends at character {end:,} of {len(source):,} (…{tail!s})")
    return (f"The input has {enc.n_untruncated:,} tokens but this model's position table holds {enc.max_tokens:,}, "
            f"so the last {cut:,} tokens were cut: {'; '.join(words)}.")


# ---------------------------------------------------------------------------------------------------------------
# Global tokens
# ---------------------------------------------------------------------------------------------------------------

SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")


def sentence_starts(enc: Encoded, text: str, pair: str) -> list[int]:
    """The first token of every sentence of each segment (a sentence ends at . ! or ? followed by a space)."""
    starts = []
    for s, source in enumerate((text, pair)):
        tokens = np.flatnonzero((enc.segment == s) & ~enc.is_special)  # (tokens of segment s,)
        if not len(tokens):
            continue
        chars = [0] + [m.end() for m in SENTENCE_END.finditer(source)]
        first = np.searchsorted(enc.offsets[tokens, 0], chars)  # the first token at or after each sentence start
        starts.extend(int(tokens[k]) for k in np.unique(first) if k < len(tokens))
    return sorted(starts)


def preset_positions(preset: str, enc: Encoded, text: str, pair: str) -> list[int]:
    """Token positions a preset makes global. ValueError when it does not apply to this input."""
    if preset == "none":
        return []
    if preset == "first token":
        return [0]
    if preset.startswith("question"):
        if not enc.has_pair:
            raise ValueError("The question preset needs a question + context pair: put the question in the first "
                             "box and the context in the second (or pick the 'Question + context' sample).")
        first_sep = int(np.flatnonzero(enc.segment)[0]) - 1
        return list(range(first_sep))  # transformers' QA default: every token before the first separator
    if preset.startswith("every sentence"):
        return sentence_starts(enc, text, pair)
    raise ValueError(f"unknown global preset {preset!r}; choose one of {', '.join(GLOBAL_PRESETS)}")


def parse_positions(spec: str) -> list[int]:
    """'0, 5, 17-20' -> [0, 5, 17, 18, 19, 20]. ValueError for anything that is not positions or ranges."""
    positions = set()
    for part in spec.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", part)
        if not m:
            raise ValueError(f"{part!r} is not a token position; write positions and ranges like 0, 5, 17-20")
        lo, hi = int(m[1]), int(m[2] or m[1])
        if hi < lo:
            raise ValueError(f"the range {part!r} runs backwards; write it low-high")
        if hi - lo > 100_000:
            raise ValueError(f"the range {part!r} is longer than any input")
        positions.update(range(lo, hi + 1))
    return sorted(positions)


def split_in_range(positions, n: int) -> tuple[list[int], list[int]]:
    """(positions inside 0..n-1, positions outside)."""
    inside = [p for p in positions if 0 <= p < n]
    return inside, [p for p in positions if not 0 <= p < n]


# ---------------------------------------------------------------------------------------------------------------
# Backends, windows, the forward pass
# ---------------------------------------------------------------------------------------------------------------

def usable_backends() -> dict[str, str | None]:
    """Every backend mapped to None when it runs here, else the reason. Stricter than available_backends(): a
    backend whose module is present but fails to build is reported here, not when the user runs it."""
    usable = {}
    for name, reason in available_backends().items():
        if reason is None:
            try:
                get_backend(name)
            except Exception as e:  # an import error in a backend module is a reason like any other
                reason = f"{type(e).__name__}: {e}"
        usable[name] = reason
    return usable


def default_backend(usable: dict[str, str | None]) -> str:
    """The fastest backend that runs here."""
    return next(name for name in ("cupy", "numba", "numpy") if usable.get(name) is None)


def config_windows(config: LongformerConfig) -> tuple[int, ...]:
    """The checkpoint's full window of every layer."""
    return tuple(config.window(layer) for layer in range(config.num_hidden_layers))


def window_options(config: LongformerConfig) -> list[int]:
    return sorted(set(WINDOW_CHOICES) | set(config_windows(config)))


def model_with(base: LongformerModel, backend: str, windows: tuple[int, ...]) -> LongformerModel:
    """A model sharing `base`'s weights, on `backend`, with these per-layer windows. `base` is left untouched (it
    may be shared between sessions), and nothing is copied on the CPU backends."""
    config = LongformerConfig.from_dict({**base.config.to_dict(), "attention_window": list(windows)})
    return LongformerModel(config, base.params, backend)


@dataclass(frozen=True)
class ForwardResult:
    """One forward pass, kept for drawing. Arrays are NumPy, float32 (or float16 for long inputs)."""

    local: tuple  # per layer (H, N, G + 2W + 1)
    glob: tuple | None  # per layer (H, N, G), None without global tokens
    global_positions: np.ndarray  # (G,) ascending
    windows: tuple[int, ...]  # full window of each layer
    input_ids: np.ndarray  # (N,)
    seconds: float
    backend: str

    @property
    def n(self) -> int:
        return len(self.input_ids)

    @property
    def num_layers(self) -> int:
        return len(self.local)

    @property
    def num_heads(self) -> int:
        return self.local[0].shape[0]

    @property
    def kind(self) -> np.ndarray:
        kind = np.full(self.n, LOCAL, dtype=np.int64)  # (N,)
        kind[self.global_positions] = GLOBAL
        return kind

    def w(self, layer: int) -> int:
        return self.windows[layer] // 2

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.local) + sum(a.nbytes for a in (self.glob or ()))


def run_forward(model: LongformerModel, input_ids: np.ndarray, global_positions) -> ForwardResult:
    """One forward pass with attentions. input_ids (N,); global_positions: token positions given global attention."""
    ids = np.asarray(input_ids, dtype=np.int64)[None]  # (1, N)
    glob_mask = np.zeros_like(ids)
    positions = np.asarray(sorted(set(int(p) for p in global_positions)), dtype=np.int64)  # (G,)
    glob_mask[0, positions] = 1
    t0 = time.perf_counter()
    out = model(ids, attention_mask=np.ones_like(ids), global_attention_mask=glob_mask, output_attentions=True)
    local = [asnumpy(a)[0] for a in out.attentions]  # per layer (H, N, G + 2W + 1)
    seconds = time.perf_counter() - t0
    dtype = np.float32 if ids.shape[1] <= FLOAT32_LIMIT else np.float16
    glob = None
    if out.global_attentions is not None:
        glob = tuple(asnumpy(a)[0].astype(dtype) for a in out.global_attentions)  # per layer (H, N, G)
    return ForwardResult(
        local=tuple(a.astype(dtype) for a in local),
        glob=glob,
        global_positions=positions,
        windows=config_windows(model.config),
        input_ids=ids[0],
        seconds=seconds,
        backend=model.backend.name,
    )


# ---------------------------------------------------------------------------------------------------------------
# Views of one layer and head ("mean" for the mean over heads)
# ---------------------------------------------------------------------------------------------------------------

def head_outputs(result: ForwardResult, layer: int, head) -> tuple[np.ndarray, np.ndarray | None]:
    """(local (N, G + 2W + 1), glob (N, G) or None) of one head, or their mean over heads, as float32.
    The mean of the layouts is the layout of the mean: both converters to N x N are linear."""
    def pick(a):
        return a.mean(axis=0, dtype=np.float32) if head == "mean" else a[int(head)].astype(np.float32)

    glob = None if result.glob is None else pick(result.glob[layer])
    return pick(result.local[layer]), glob


def dense_head(result: ForwardResult, layer: int, head) -> np.ndarray:
    """The full (N, N) attention of one head (or the mean), from the model's two outputs."""
    local, glob = head_outputs(result, layer, head)
    dense = outputs_to_dense(local[None, None], None if glob is None else glob[None, None], result.kind[None],
                             result.w(layer))  # (1, 1, N, N)
    return dense[0, 0]


def block_max(a: np.ndarray, block: int, axes=(0, 1)) -> np.ndarray:
    """Max over block x block tiles (along `axes`; a ragged last tile is padded with 0, below any probability)."""
    if block == 1:
        return a
    pad = [(0, 0)] * a.ndim
    for ax in axes:
        pad[ax] = (0, -a.shape[ax] % block)
    a = np.pad(a, pad)
    shape = []
    for ax, size in enumerate(a.shape):
        shape += [size // block, block] if ax in axes else [size]
    reduce = tuple(i + 1 + k for k, i in enumerate(sorted(axes)))  # the inner axis of each split pair
    return a.reshape(shape).max(axis=reduce)


def block_size(n: int, cells: int) -> int:
    """Tokens per cell so that n tokens fit in at most `cells` cells."""
    return max(1, -(-n // cells))


def attention_matrix(result: ForwardResult, layer: int, head, cells: int = EXACT_LIMIT) -> tuple[np.ndarray, int]:
    """(matrix, tokens per cell): exact up to `cells` tokens, else block-max downsampled to at most cells x cells."""
    block = block_size(result.n, cells)
    return block_max(dense_head(result, layer, head), block), block


def band_view(result: ForwardResult, layer: int, head, rows: int = EXACT_LIMIT):
    """Longformer's own layout: (global columns (R, G), band (R, 2W+1), queries per row), with the queries
    block-max downsampled to at most `rows` rows. Band slot t of query i is key i + t - W."""
    local, _ = head_outputs(result, layer, head)
    G = len(result.global_positions)
    block = block_size(result.n, rows)
    return block_max(local[:, :G], block, axes=(0,)), block_max(local[:, G:], block, axes=(0,)), block


def query_weights(result: ForwardResult, layer: int, head, query: int) -> tuple[np.ndarray, np.ndarray]:
    """How much `query` attends to each key: (local (N,), global (N,)).

    A local query spreads one softmax over its band (local) and the global tokens (global). A global query
    attends to every token with its own projections: that whole row is returned as global.
    """
    local, glob = head_outputs(result, layer, head)
    n, w, G = result.n, result.w(layer), len(result.global_positions)
    local_w, global_w = np.zeros(n, np.float32), np.zeros(n, np.float32)
    hits = np.flatnonzero(result.global_positions == query)
    if len(hits):
        global_w[:] = glob[:, hits[0]]
        return local_w, global_w
    keys = query + np.arange(2 * w + 1) - w  # (2W+1,) key of each band slot
    inside = (keys >= 0) & (keys < n)
    local_w[keys[inside]] = local[query, G:][inside]
    global_w[result.global_positions] = local[query, :G]
    return local_w, global_w


def model_view(result: ForwardResult, cells: int = MODEL_VIEW_CELLS) -> tuple[np.ndarray, int, int]:
    """Every layer x head as one mosaic (L*(c+1)-1, H*(c+1)-1) with NaN gutters, c cells a side for each head.
    Returns (mosaic, c, tokens per cell). Only for inputs up to MODEL_VIEW_LIMIT tokens."""
    if result.n > MODEL_VIEW_LIMIT:
        raise ValueError(f"The layers × heads view draws every head's full matrix, so it is for inputs of at most "
                         f"{MODEL_VIEW_LIMIT} tokens; this one has {result.n:,}. Use the matrix view, or a shorter "
                         "text.")
    block = block_size(result.n, cells)
    c = -(-result.n // block)
    L, H = result.num_layers, result.num_heads
    mosaic = np.full((L * (c + 1) - 1, H * (c + 1) - 1), np.nan, dtype=np.float32)
    for layer in range(L):
        glob = None if result.glob is None else result.glob[layer].astype(np.float32)[None]
        dense = outputs_to_dense(result.local[layer].astype(np.float32)[None], glob, result.kind[None],
                                 result.w(layer))[0]  # (H, N, N)
        small = block_max(dense, block, axes=(1, 2))  # (H, c, c)
        for head in range(H):
            mosaic[layer * (c + 1):layer * (c + 1) + c, head * (c + 1):head * (c + 1) + c] = small[head]
    return mosaic, c, block


# ---------------------------------------------------------------------------------------------------------------
# The token view: the text shaded by one query's attention
# ---------------------------------------------------------------------------------------------------------------

LOCAL_RGB, GLOBAL_RGB = (31, 119, 180), (230, 110, 0)  # plotly's blue and a deeper orange, also in the figures


def token_html(enc: Encoded, text: str, pair: str, query: int, local_w: np.ndarray, global_w: np.ndarray,
               span: int) -> str:
    """HTML of the tokens query-span .. query+span, shaded blue by local and orange by global attention (the
    shade grows with the square root of the weight, so small weights stay visible), the query outlined, and the
    global tokens outside that stretch listed after it. Hover a token for its weight."""
    top = max(float(local_w.max()), float(global_w.max()), 1e-12)
    sources = (text, pair)

    def piece(j):
        weight, rgb = (global_w[j], GLOBAL_RGB) if global_w[j] > 0 else (local_w[j], LOCAL_RGB)
        alpha = float(np.sqrt(weight / top))
        start, end = enc.offsets[j]
        surface = enc.tokens[j] if start == end else sources[enc.segment[j]][start:end]
        kind = "global" if global_w[j] > 0 else "local"
        border = "box-shadow:0 0 0 2px #d62728;" if j == query else ""
        label = f"token {j} {enc.tokens[j]!r}: {weight:.4f} ({kind})"
        special = "font-family:monospace;font-size:85%;" if start == end else ""
        return (f'<span title="{html.escape(label)}" style="background:rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha:.3f});'
                f'{border}{special}border-radius:2px">{html.escape(surface)}</span>')

    lo, hi = max(0, query - span), min(enc.n, query + span + 1)
    parts = ["… " if lo > 0 else ""]
    for j in range(lo, hi):
        if j > lo and enc.segment[j] == enc.segment[j - 1] and not enc.is_special[j] and not enc.is_special[j - 1]:
            gap = sources[enc.segment[j]][enc.offsets[j - 1, 1]:enc.offsets[j, 0]]
            parts.append(html.escape(gap))
        elif j > lo:
            parts.append(" ")
        parts.append(piece(j))
    parts.append(" …" if hi < enc.n else "")
    outside = [j for j in np.flatnonzero(global_w > 0) if not lo <= j < hi]
    body = "".join(parts)
    if outside:
        shown = " ".join(piece(j) for j in outside[:200])
        more = f" and {len(outside) - 200} more" if len(outside) > 200 else ""
        body += f'<div style="margin-top:0.6em"><b>Global tokens outside this stretch:</b> {shown}{more}</div>'
    return f'<div style="line-height:1.9;white-space:pre-wrap;font-size:0.95rem">{body}</div>'


# ---------------------------------------------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------------------------------------------

def npz_bytes(**arrays) -> bytes:
    """Arrays as the bytes of a compressed .npz file."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})
    return buf.getvalue()


def layer_npz(result: ForwardResult, layer: int) -> bytes:
    """One layer's attention, every head, in the model's layout, with what is needed to read it."""
    return npz_bytes(
        local_attention=result.local[layer],  # (H, N, G + 2W + 1): global columns, then band slot t = key i+t-W
        global_attention=None if result.glob is None else result.glob[layer],  # (H, N, G)
        global_positions=result.global_positions,
        input_ids=result.input_ids,
        window=np.int64(result.windows[layer]),
        layer=np.int64(layer),
    )
