"""What a click or a selection in a chart means for the explorer's state, and the state in the page's URL.
No streamlit here: the page passes in what st.plotly_chart returned and what st.query_params holds, and applies
the changes these functions return.

A selection is Streamlit's plotly event: {"selection": {"points": [{"x", "y", "curve_number", "customdata", ...}],
"box": [{"x": [x0, x1], "y": [y0, y1]}], ...}}. Traces that can be clicked carry a `meta` name in the figure
(figures.py), and their points carry what they stand for in customdata.
"""

from __future__ import annotations

import json

VIEWS = ("Matrix", "Band", "Token", "Layers × heads", "Compare", "Head view")
URL_KEYS = ("view", "layer", "head", "query", "sample")  # what a shared link restores


def signature(event) -> str:
    """A stable fingerprint of an event, so each selection is acted on once."""
    return json.dumps(event, sort_keys=True, default=str)


def points(event) -> list[dict]:
    return list(((event or {}).get("selection") or {}).get("points") or [])


def box(event) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """((x0, x1), (y0, y1)) of the last box selected, or None."""
    boxes = ((event or {}).get("selection") or {}).get("box") or []
    if not boxes:
        return None
    b = boxes[-1]
    (x0, x1), (y0, y1) = sorted(b["x"][:2]), sorted(b["y"][:2])
    return (x0, x1), (y0, y1)


def clicked(event, what: str) -> int | None:
    """The value a clicked point of kind `what` stands for (its customdata[0] is (kind, value) or its x/y):
    'query' (a token), 'head' (a tile: returns layer * 1000 + head)."""
    for p in points(event):
        data = p.get("customdata")
        if isinstance(data, (list, tuple)) and len(data) >= 2 and data[0] == what:
            return int(data[1])
    return None


def box_to_region(event, n: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """A box drawn on the matrix (x: keys, y: queries) as inclusive (queries, keys) ranges inside 0..n-1."""
    b = box(event)
    if b is None:
        return None
    (x0, x1), (y0, y1) = b

    def clip(lo, hi):
        lo, hi = int(round(max(0.0, lo + 0.5))), int(round(min(n - 1.0, hi - 0.5)))
        return (lo, max(lo, hi))

    return clip(y0, y1), clip(x0, x1)


def from_url(params: dict, layers: int, heads: int, samples) -> dict:
    """The state a link carries, each value checked; what does not fit this model or input is left out."""
    state = {}
    view = params.get("view")
    if view in VIEWS:
        state["view"] = view
    try:
        layer = int(params.get("layer", ""))
        if 0 <= layer < layers:
            state["layer"] = layer
    except ValueError:
        pass
    head = params.get("head")
    if head == "mean":
        state["head"] = "mean"
    elif head is not None and head.isdigit() and int(head) < heads:
        state["head"] = int(head)
    query = params.get("query", "")
    if query.isdigit():
        state["query"] = int(query)  # checked against the input's length once it is tokenized
    if params.get("sample") in samples:
        state["sample"] = params["sample"]
    return state


def to_url(state: dict) -> dict:
    """The URL's query parameters for the current state (strings; values that are None are left out)."""
    return {k: str(state[k]) for k in URL_KEYS if state.get(k) is not None}
