"""The one JSON reader of the project: config.json, tokenizer files, shard indexes."""

from __future__ import annotations

import json
import os


def read_json(path: str | os.PathLike, missing_ok: bool = True) -> dict:
    """The JSON object in `path`; {} when there is no such file and `missing_ok`. Anything else is a ValueError
    that names the file: a folder in its place, bytes that are not UTF-8, invalid JSON, or not an object."""
    path = os.fspath(path)
    if not os.path.exists(path):
        if missing_ok:
            return {}
        raise ValueError(f"no {os.path.basename(path)} in {os.path.dirname(path) or os.curdir}")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a file (a folder or something else has its name)")
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: {error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError(f"{path} nests JSON too deeply to read") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value
