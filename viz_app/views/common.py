"""What every page shares: the sidebar's checkpoint field and the cached loaders. UI layer: this is where streamlit
and its caches live; the computations it calls are in viz_app/explore.py and refimpl.

Caching: the model, its tokenizer and transformers' copy load once per folder (st.cache_resource, shared by all
sessions, never mutated); a forward pass is kept per (folder, backend, windows, text, pair, global tokens), so
changing the layer, head or view redraws from memory.
"""

from __future__ import annotations

import os
import threading

import streamlit as st

from refimpl.io.default_model import HOW_TO_USE_ANOTHER_MODEL, resolve_model_dir
from refimpl.model import LongformerModel
from refimpl.io.tokenizer import LongformerTokenizer
from viz_app import explore
from viz_app.launch import MODEL_ENV  # `longformer-lab app --model DIR` passes the folder through it

_KEPT = "_model_dir_kept"  # the field's value, kept under a non-widget key so that it survives page switches


@st.cache_resource(show_spinner="Preparing the default model (converted once, then cached on disk)…")
def resolve(path: str) -> str:
    return str(resolve_model_dir(path or None))


@st.cache_resource(show_spinner="Loading the model…")
def load_base(model_dir: str) -> LongformerModel:
    """The checkpoint's weights on NumPy. Pages derive models with other backends or windows from it."""
    return LongformerModel.from_pretrained(model_dir)


@st.cache_resource(show_spinner=False)
def load_tokenizer(model_dir: str) -> LongformerTokenizer:
    return LongformerTokenizer.from_pretrained(model_dir)


@st.cache_resource(show_spinner=False)
def usable_backends() -> dict:
    return explore.usable_backends()


@st.cache_resource(show_spinner=False)
def backend_lock() -> threading.Lock:
    """One model run or measurement at a time, across sessions: Numba's fallback threading layer (workqueue, where
    neither OpenMP nor TBB is installed) must not be entered from two threads at once, and two long documents at
    once would only share the same cores and double the memory."""
    return threading.Lock()


@st.cache_resource(show_spinner=False, max_entries=8)
def model(model_dir: str, backend: str, windows: tuple) -> LongformerModel:
    return explore.model_with(load_base(model_dir), backend, windows)


@st.cache_resource(show_spinner=False, max_entries=16)
def encoded(model_dir: str, text: str, pair: str) -> explore.Encoded:
    return explore.encode(load_tokenizer(model_dir), text, pair, load_base(model_dir).config.max_tokens)


@st.cache_resource(show_spinner=False, max_entries=4)
def forward(model_dir: str, backend: str, windows: tuple, text: str, pair: str,
            global_positions: tuple) -> explore.ForwardResult:
    enc = encoded(model_dir, text, pair)
    with backend_lock():
        return explore.run_forward(model(model_dir, backend, windows), enc.input_ids, global_positions)


def sidebar_model() -> str:
    """The sidebar's checkpoint field; returns the checkpoint folder to use, or stops the page with a message."""
    if "model_dir" not in st.session_state:
        st.session_state["model_dir"] = st.session_state.get(_KEPT, os.environ.get(MODEL_ENV, ""))
    with st.sidebar:
        st.text_input("Checkpoint folder", key="model_dir",
                      placeholder="empty: all-MiniLM-L6-v2 as a Longformer",
                      help="A Longformer checkpoint folder (config.json, model.safetensors, tokenizer files). "
                           "Leave empty for the embedded default model.")
        with st.expander("How to use another model"):
            st.text(HOW_TO_USE_ANOTHER_MODEL)
    st.session_state[_KEPT] = st.session_state["model_dir"]
    try:
        folder = resolve(st.session_state["model_dir"].strip())
        load_base(folder)
        load_tokenizer(folder)
    except ValueError as e:
        st.error(f"Cannot use this checkpoint folder: {e}")
        st.stop()
    st.sidebar.caption(f"Model: `{folder}`")
    return folder
