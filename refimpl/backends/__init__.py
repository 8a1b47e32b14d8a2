"""The backend seam: the model is written once; a backend supplies the array module and the kernels that differ.

The interface, with every method's shapes, is `refimpl.backends.base.Backend`. Backends are registered by name in
BACKENDS below and imported only when chosen, so that `import refimpl` needs neither numba nor cupy. Nothing
silently falls back: an unknown or unavailable backend raises with the reason and the names that do run here.
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from refimpl.backends.base import Backend, check_attention_inputs

# name -> "module:class". The class is imported the first time the backend is asked for.
BACKENDS = {
    "numpy": "refimpl.backends.numpy:NumpyBackend",
    "numba": "refimpl.backends.numba:NumbaBackend",
    "cupy": "gpu.backend:CupyBackend",
    "dense": "refimpl.backends.dense:DenseBackend",
}


def _numba_unavailable() -> str | None:
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed (pip install 'longformer-lab[numba]')"
    return None


def _cupy_unavailable() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed (pip install 'longformer-lab[gpu]')"
    return importlib.import_module("gpu.backend").unavailable_reason()


# name -> why it cannot run here (None when it can); checked without importing the backend's heavy packages
_UNAVAILABLE = {"numba": _numba_unavailable, "cupy": _cupy_unavailable}

_instances: dict[str, Backend] = {}


def available_backends() -> dict[str, str | None]:
    """Every registered backend mapped to None when it runs here, or to the reason it does not."""
    return {name: _UNAVAILABLE.get(name, lambda: None)() for name in BACKENDS}


def get_backend(backend) -> Backend:
    """The backend registered as `backend` (a name), or a Backend object passed through. Raises ValueError with the
    reason when the name is unknown or the backend cannot run here."""
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a name ({', '.join(BACKENDS)}) or a Backend object, got "
                         f"{type(backend).__name__} {backend!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known backends: {', '.join(BACKENDS)}")
    if backend not in _instances:
        reason = _UNAVAILABLE.get(backend, lambda: None)()
        if reason is not None:
            usable = [n for n, r in available_backends().items() if r is None]
            raise ValueError(f"backend {backend!r} is not available: {reason}. Available here: {', '.join(usable)}")
        module_name, class_name = BACKENDS[backend].split(":")
        _instances[backend] = getattr(importlib.import_module(module_name), class_name)()
    return _instances[backend]


def asnumpy(x):
    """Any output array (NumPy or CuPy) as a NumPy array; tuples and lists element-wise; None stays None."""
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return type(x)(asnumpy(e) for e in x)
    if isinstance(x, np.ndarray):
        return x
    get = getattr(x, "get", None)  # cupy.ndarray.get() copies to the host
    return get() if callable(get) else np.asarray(x)


__all__ = ["Backend", "BACKENDS", "available_backends", "get_backend", "asnumpy", "check_attention_inputs"]
