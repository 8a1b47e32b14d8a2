"""Which tokens get global attention: the presets, positions typed by hand, the range check and the cap, assembled
into one choice with the messages the page shows. No streamlit here.

The cap: each global token adds a column to every row (and a full row), so memory grows as N x G and G is capped
(the paper uses few). Positions typed by hand were asked for one by one, so they are kept first; the preset's fill
what room is left, spread evenly over the document rather than the lowest ones kept (a cap that kept positions
0-255 would silently drop every sentence start after them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from viz_app.core.text import Encoded, sentence_starts

GLOBAL_PRESETS = ("none", "first token", "question (before the first separator)", "every sentence start")
MAX_GLOBAL = 256


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


def spread(positions: list[int], count: int) -> list[int]:
    """`count` of the sorted `positions`, evenly spaced over them (all of them when count >= len)."""
    if count >= len(positions):
        return list(positions)
    if count <= 0:
        return []
    picks = np.linspace(0, len(positions) - 1, count).round().astype(int)
    return [positions[k] for k in np.unique(picks)]


def _shown(positions, limit: int = 10) -> str:
    return ", ".join(map(str, positions[:limit])) + (" …" if len(positions) > limit else "")


@dataclass(frozen=True)
class GlobalChoice:
    positions: tuple[int, ...]  # ascending, at most cap
    warnings: list[str] = field(default_factory=list)


def choose(preset: str, typed: str, enc: Encoded, text: str, pair: str, cap: int = MAX_GLOBAL) -> GlobalChoice:
    """The global positions for a preset plus positions typed by hand, with every problem as a message."""
    warnings = []
    try:
        from_preset = preset_positions(preset, enc, text, pair)
    except ValueError as e:
        warnings.append(str(e))
        from_preset = []
    try:
        wanted = parse_positions(typed)
    except ValueError as e:
        warnings.append(f"Global positions: {e}")
        wanted = []
    inside, outside = split_in_range(wanted, enc.n)
    if outside:
        warnings.append(f"Global positions out of range, ignored: {_shown(outside)}. The input has {enc.n:,} tokens "
                        f"(positions 0 to {enc.n - 1:,}).")
    asked = sorted(set(from_preset) | set(inside))
    if len(asked) <= cap:
        return GlobalChoice(tuple(asked), warnings)
    kept_typed = inside[:cap]
    rest = [p for p in sorted(set(from_preset)) if p not in set(kept_typed)]
    kept_preset = spread(rest, cap - len(kept_typed))
    kept = sorted(set(kept_typed) | set(kept_preset))
    dropped_typed, dropped_preset = len(inside) - len(kept_typed), len(rest) - len(kept_preset)
    parts = []
    if dropped_typed:
        parts.append(f"{dropped_typed:,} of the typed positions (from {inside[cap]:,} on)")
    if dropped_preset:
        parts.append(f"{dropped_preset:,} of the preset's {len(set(from_preset)):,} positions (kept: every "
                     f"{len(rest) / max(len(kept_preset), 1):.1f}th, spread over the document)")
    warnings.append(f"{len(asked):,} global tokens asked for; the explorer keeps {cap} (every global token adds a "
                    f"full row and column, so memory grows as N × G). Dropped: {'; '.join(parts)}. Typed positions "
                    "are kept first.")
    return GlobalChoice(tuple(kept), warnings)
