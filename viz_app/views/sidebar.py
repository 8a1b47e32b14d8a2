"""The sidebar's checkpoint field, shared by the pages that run the model (UI layer)."""

from __future__ import annotations

import os

import streamlit as st

from refimpl.io.default_model import HOW_TO_USE_ANOTHER_MODEL, cache_dir
from viz_app.core.checkpoints import check_allowed, parse_roots
from viz_app.launch import MODEL_ENV, ROOTS_ENV  # `longformer-lab app --model DIR` passes the folder through it
from viz_app.views import cache

_KEPT = "_model_dir_kept"  # the field's value, kept under a non-widget key so that it survives page switches


def allowed_roots():
    """None on localhost (any folder); beyond it, the launcher's roots and the default model's cache."""
    roots = parse_roots(os.environ.get(ROOTS_ENV))
    return None if roots is None else [*roots, cache_dir().resolve()]


def checkpoint() -> str:
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
    typed = st.session_state["model_dir"].strip()
    try:
        if typed:
            check_allowed(typed, allowed_roots())
        folder = cache.resolve(typed)
        cache.load_base(folder)
        cache.load_tokenizer(folder)
    except ValueError as e:
        st.error(f"Cannot use this checkpoint folder: {e}")
        st.stop()
    st.sidebar.caption(f"Model: `{folder}`")
    return folder
