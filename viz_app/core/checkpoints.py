"""Which checkpoint folders a visitor may load. No streamlit here.

On localhost the visitor is the person who started the app, and any folder is theirs to open. When the server
listens beyond localhost (`longformer-lab app --host 0.0.0.0`), a visitor could otherwise make it read any folder
the server can: then only folders inside the allowed roots load (the --model folder, the default model's cache,
and any `--model-root`), after symlinks are resolved.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}


def is_local(host: str | None) -> bool:
    return (host or "") in LOCAL_HOSTS


def parse_roots(value: str | None) -> list[Path] | None:
    """The allowed roots from their environment form (os.pathsep-separated); None: no restriction."""
    if value is None:
        return None
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p]


def check_allowed(folder: str | os.PathLike, roots: list[Path] | None) -> None:
    """ValueError when `folder` lies outside every root (roots None: everything is allowed)."""
    if roots is None:
        return
    real = Path(folder).expanduser().resolve()
    if not any(real == root or root in real.parents for root in roots):
        raise ValueError(f"{os.fspath(folder)!r} is outside the folders this server may load (it listens beyond "
                         f"localhost). Allowed: {', '.join(map(str, roots)) or 'only the default model'}.")
