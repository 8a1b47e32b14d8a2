"""Where a checkpoint lives: a local folder, or a Hugging Face Hub repository fetched through `huggingface_hub`.

Every `from_pretrained` of the project (config, tokenizer, models, the converter's source, the app, the CLI's
--model) takes what transformers' takes: a folder, or a repository name such as "allenai/longformer-base-4096",
with `revision`, `cache_dir`, `local_files_only` and `token` as in transformers, and HF_HOME / HF_HUB_CACHE /
HF_HUB_OFFLINE honoured (huggingface_hub reads them). Only the files the caller reads are downloaded, one by one.
"""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants, errors
from huggingface_hub.utils import validate_repo_id

# the keywords of from_pretrained that choose where files come from (transformers' names)
HUB_KEYWORDS = ("revision", "cache_dir", "local_files_only", "token", "force_download")

HOW_TO_FETCH = ("download it on a machine with network access (`hf download {name}`, or "
                "`huggingface-cli download {name}`) into the Hugging Face cache or into a folder, and pass that "
                "folder")


def split_hub_keywords(kwargs: dict) -> tuple[dict, dict]:
    """kwargs -> (the hub keywords, the rest)."""
    hub = {k: kwargs[k] for k in HUB_KEYWORDS if k in kwargs}
    return hub, {k: v for k, v in kwargs.items() if k not in HUB_KEYWORDS}


def checkpoint_path(name_or_path, what: str = "checkpoint") -> str:
    """The argument of a from_pretrained as a string path or name, or a ValueError saying what is allowed."""
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str):
        raise ValueError(f"the {what} must be a folder (str or os.PathLike) or a Hub repository name such as "
                         f"'allenai/longformer-base-4096', got {type(name_or_path).__name__} {name_or_path!r}")
    if not name_or_path.strip():
        raise ValueError(f"the {what} is an empty string; pass a folder or a Hub repository name")
    return name_or_path


def resolve(name_or_path, filenames, *, revision=None, cache_dir=None, local_files_only=False, token=None,
            force_download=False, what: str = "checkpoint") -> Path:
    """The local folder holding `name_or_path`'s copies of those of `filenames` that it has.

    A folder is returned as it is (nothing is copied). Otherwise `name_or_path` must be a Hub repository name: each
    file is fetched into the Hugging Face cache (or found there, offline), and the cache's snapshot folder is
    returned. A file the repository does not have is skipped; the caller says which it needs. ValueError when the
    name is neither a folder nor a repository that can be had.
    """
    name = checkpoint_path(name_or_path, what)
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise ValueError(f"{name!r} is a file, not a folder; a {what} is a folder (config.json, model.safetensors, "
                         "the tokenizer files) or a Hub repository name")
    try:
        validate_repo_id(name)
    except errors.HFValidationError:
        raise ValueError(f"{name!r} is not a folder, and not a Hub repository name either (names look like "
                         "'org/name'); pass the folder of a checkpoint") from None
    folder, problems = None, []
    for filename in filenames:
        try:
            path = huggingface_hub.hf_hub_download(
                name, filename, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                token=token, force_download=force_download)
        except (errors.EntryNotFoundError, errors.LocalEntryNotFoundError) as e:
            problems.append(e)  # this file is not in the repository, or not in the cache while offline
            continue
        except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.GatedRepoError) as e:
            raise ValueError(f"cannot use Hub repository {name!r}: {type(e).__name__}: {str(e).splitlines()[0]}") \
                from None
        except (errors.HfHubHTTPError, OSError) as e:
            raise ValueError(f"cannot fetch {filename} of {name!r} from the Hub ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}); {HOW_TO_FETCH.format(name=name)}") \
                from None
        folder = Path(path).parent
    if folder is None:
        offline = local_files_only or constants.HF_HUB_OFFLINE
        where = f"the Hugging Face cache ({cache_dir or constants.HF_HUB_CACHE})"
        raise ValueError(
            f"{name!r} is not a local folder, and {where} has none of its files {', '.join(filenames)}"
            f"{' (offline: HF_HUB_OFFLINE or local_files_only)' if offline else ''}; "
            f"{HOW_TO_FETCH.format(name=name)}")
    return folder
