"""Every cache of the app, in one place (UI layer: streamlit lives here; what is cached is computed in viz_app/core
and refimpl).

    st.cache_resource, shared by every session and never mutated by a page:
      models        the checkpoint's weights (2 folders at most: a visitor typing folder after folder must not
                    fill the memory), derived models per (backend, windows, dilations, causal), transformers' copy
      results       a forward pass per (folder, backend, band, text, pair, global tokens), band a forward.Band
                    (windows, dilations, causal) (in a Bounded store,
                    itself a cache_resource, since its progress bar cannot be replayed); one head's N x N
                    matrix; the head statistics; so changing the layer, head, query or view redraws from memory
Bounds are max_entries on each; a 4,096-token result is about 150 MB (float16), a dense head 64 MB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import streamlit as st

from refimpl.io.default_model import resolve_model_dir
from refimpl.io.tokenizer import LongformerTokenizer
from refimpl.model import LongformerModel
from viz_app.core import agreement, attention_views, forward as fw, head_stats
from viz_app.core.text import Encoded, encode


@st.cache_resource(show_spinner="Preparing the default model (converted once, then cached on disk)…", max_entries=8)
def resolve(path: str) -> str:
    return str(resolve_model_dir(path or None))


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def load_base(model_dir: str) -> LongformerModel:
    """The checkpoint's weights on NumPy. Pages derive models with other backends or windows from it."""
    return LongformerModel.from_pretrained(model_dir)


@st.cache_resource(show_spinner=False, max_entries=2)
def load_tokenizer(model_dir: str) -> LongformerTokenizer:
    return LongformerTokenizer.from_pretrained(model_dir)


@st.cache_resource(show_spinner=False)
def usable_backends() -> dict:
    return fw.usable_backends()


@st.cache_resource(show_spinner=False)
def backend_lock() -> threading.Lock:
    """One model run or measurement at a time, across sessions: Numba's fallback threading layer (workqueue, where
    neither OpenMP nor TBB is installed) must not be entered from two threads at once, and two long documents at
    once would only share the same cores and double the memory."""
    return threading.Lock()


@st.cache_resource(show_spinner=False, max_entries=4)
def model(model_dir: str, backend: str, windows: tuple, dilations: tuple | None = None,
          autoregressive: bool = False) -> LongformerModel:
    return fw.model_with(load_base(model_dir), backend, windows, dilations, autoregressive)


@st.cache_resource(show_spinner=False, max_entries=16)
def encoded(model_dir: str, text: str, pair: str) -> Encoded:
    return encode(load_tokenizer(model_dir), text, pair, load_base(model_dir).config.max_tokens)


class Bounded:
    """A least-recently-used store of at most `size` entries, safe across sessions' threads. For results whose
    computation reports progress to the page: st.cache_resource would record that progress bar as part of the
    cached call and refuse to replay it."""

    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _forward_results() -> Bounded:
    return Bounded(4)


def forward(model_dir: str, backend: str, band: fw.Band, text: str, pair: str, global_positions: tuple,
            progress=None) -> fw.ForwardResult:
    """The forward pass, kept for 4 inputs; progress(layers done, layers) is told as each layer finishes when it
    has to run."""
    key = (model_dir, backend, band, text, pair, global_positions)
    result = _forward_results().get(key)
    if result is None:
        enc = encoded(model_dir, text, pair)
        with backend_lock():
            result = fw.run_forward(model(model_dir, backend, band.windows, band.dilations, band.autoregressive),
                                    enc.input_ids, global_positions, progress)
        _forward_results().put(key, result)
    return result


@st.cache_resource(show_spinner=False, max_entries=3)
def dense(model_dir: str, backend: str, band: fw.Band, text: str, pair: str, global_positions: tuple, layer: int,
          head) -> object:
    """One head's (N, N) attention (or the mean over heads)."""
    result = forward(model_dir, backend, band, text, pair, global_positions)
    return attention_views.dense_head(result, layer, head)


@st.cache_resource(show_spinner=False, max_entries=4)
def stats(model_dir: str, backend: str, band: fw.Band, text: str, pair: str,
          global_positions: tuple) -> head_stats.HeadStats:
    return head_stats.head_stats(forward(model_dir, backend, band, text, pair, global_positions))


@st.cache_resource(show_spinner=False, max_entries=1)
def load_transformers(model_dir: str, windows: tuple):
    return agreement.load_transformers(model_dir, windows)


@st.cache_resource(show_spinner=False, max_entries=16)
def outputs(model_dir: str, name: str, windows: tuple, input_ids: tuple, global_positions: tuple):
    """One implementation's outputs on one input, for the parity page."""
    with backend_lock():
        if name == agreement.TRANSFORMERS:
            return agreement.run_transformers(load_transformers(model_dir, windows), input_ids, global_positions)
        return agreement.run_refimpl(model(model_dir, name, windows), input_ids, global_positions)
