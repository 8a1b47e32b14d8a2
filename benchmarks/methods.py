"""What the benchmark runs: every implementation ("method") at each scope, on shared weights and inputs.

Scopes (the same work for every method of a scope, so that their times and GFLOP/s compare):
    kernel      passes 1-3 only (refimpl/attention.py): the band with the global columns, q already scaled;
                (1, H, N, D) q, k, v -> context. Kernel to kernel: no projections, no pass 4.
    attention   one layer's self-attention: the q, k, v projections, passes 1-4, hidden (1, N, C) -> context
                (1, N, C), transformers' LongformerSelfAttention being the same scope.
    model       LongformerModel's forward from token ids to last_hidden_state (12 layers).

Methods:
    dense         the dense backend (refimpl/backends/dense.py): passes 1-3 as one masked N x N softmax
    numpy         the reference backend (refimpl/attention.py), readable first
    numba         the Numba backend (refimpl/backends/numba.py)
    cupy          the CuPy backend, where a GPU is
    transformers  transformers' LongformerSelfAttention / LongformerModel on PyTorch (attention and model scopes)
    flex          PyTorch's FlexAttention on the CPU, torch.compile(flex_attention) with a block mask of the band,
                  the global columns and the local queries (kernel scope only: it is an attention kernel)

The shape is longformer-base's: 12 layers, hidden 768, 12 heads of 64, attention window 512 (W = 256), intermediate
3072, vocabulary 50265; batch 1, the first token global, float32, random weights that every method shares
(transformers gets the same arrays, so all of them compute the same numbers).

FLOPs (multiply-add = 2) are the products each scope needs, counted once for all methods, as the Numba backend
computes them: a method that does more work (dense's N x N, transformers' key_global and value_global over all N
tokens) shows it as a lower GFLOP/s.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import numpy as np

SCOPES = ("kernel", "attention", "model")
METHODS = ("dense", "numpy", "numba", "cupy", "transformers", "flex")
SCOPE_METHODS = {  # which methods run at which scope
    "kernel": ("dense", "numpy", "numba", "cupy", "flex"),
    "attention": ("dense", "numpy", "numba", "cupy", "transformers"),
    "model": ("dense", "numpy", "numba", "cupy", "transformers"),
}
BASELINE = {"kernel": "flex", "attention": "transformers", "model": "transformers"}  # the "x" columns' reference

SHAPE = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
             attention_window=512, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
             sep_token_id=2, type_vocab_size=1)
W = SHAPE["attention_window"] // 2
N_GLOBAL = 1  # the first token
WARMUP_LENGTH = 512


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ---------------------------------------------------------------------------------------------------------------
# What is counted
# ---------------------------------------------------------------------------------------------------------------

def kernel_flops(n: int, C: int = 768, w: int = W, G: int = N_GLOBAL) -> float:
    """Passes 1-3: scores and context of each query against its 2W+1 band keys and the G global keys, all heads."""
    return float(2 * 2 * n * (2 * w + 1 + G) * C)


def attention_flops(n: int, C: int = 768, H: int = 12, w: int = W, G: int = N_GLOBAL) -> float:
    """One layer's self-attention: q, k, v over all N tokens (2 N C 3C), passes 1-3, and pass 4 with key_global and
    value_global folded into the G global queries (about 4 G H N C, refimpl.backends.numba.global_attention)."""
    return float(2 * n * C * 3 * C) + kernel_flops(n, C, w, G) + float(4 * G * H * n * C)


def model_flops(n: int, layers: int = 12, C: int = 768, F: int = 3072, w: int = W, G: int = N_GLOBAL) -> float:
    """The model: per layer the self-attention, the attention output (2 N C^2) and the FFN (2 N C F, twice).
    773 GFLOP at 4096 tokens (the issue's "~773 GFLOP computed")."""
    return float(layers * (attention_flops(n, C, 12, w, G) + 2 * n * C * C + 2 * 2 * n * C * F))


FLOPS = {"kernel": kernel_flops, "attention": attention_flops, "model": model_flops}


# ---------------------------------------------------------------------------------------------------------------
# Which methods run here
# ---------------------------------------------------------------------------------------------------------------

def _torch_unavailable() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (a test/benchmark extra)"
    return None


def unavailable_reasons() -> dict[str, str | None]:
    """Every method mapped to None when it runs here, or to the reason it does not."""
    from refimpl.backends import available_backends

    reasons = {name: r for name, r in available_backends().items() if name in METHODS}
    reasons["transformers"] = _torch_unavailable() or (
        None if importlib.util.find_spec("transformers") else "transformers is not installed")
    reasons["flex"] = _torch_unavailable()
    if reasons["flex"] is None:
        import torch  # only to read its version; FlexAttention came with torch 2.5

        major, minor = (int(x) for x in torch.__version__.split(".")[:2])
        if (major, minor) < (2, 5):
            reasons["flex"] = f"torch {torch.__version__} has no FlexAttention (2.5 or newer)"
    return reasons


def available_methods(requested=None, scopes=SCOPES) -> tuple[list[str], dict[str, str]]:
    """The requested methods (default: all) that run here at one of `scopes` at least, and why the others do not."""
    wanted = list(requested) if requested else list(METHODS)
    unknown = [m for m in wanted if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    reasons = unavailable_reasons()
    usable = [m for m in wanted if reasons[m] is None and any(m in SCOPE_METHODS[s] for s in scopes)]
    skipped = {m: reasons[m] for m in wanted if reasons[m] is not None}
    return usable, skipped


# ---------------------------------------------------------------------------------------------------------------
# Weights and inputs every method shares
# ---------------------------------------------------------------------------------------------------------------

def make_config(max_tokens: int, layers: int):
    from refimpl.config import LongformerConfig

    return LongformerConfig(**{**SHAPE, "num_hidden_layers": layers,
                               "max_position_embeddings": max(max_tokens, WARMUP_LENGTH) + 2})


def make_params(config, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights: N(0, 0.02) as transformers initialises them (biases too, so that a bias that is lost shows),
    LayerNorm weights 1."""
    from refimpl.io.checkpoint import encoder_shapes

    rng = np.random.default_rng(seed)
    return {name: np.ones(shape, np.float32) if name.endswith("LayerNorm.weight")
            else rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            for name, shape in encoder_shapes(config, pooler=True).items()}


def kernel_inputs(n: int, H: int = 12, D: int = 64):
    """q (scaled by 1/sqrt(D), as the model passes it), k, v (1, H, N, D) float32; kind (1, N) with the first token
    global; global_index (1, 1), n_global (1,)."""
    from refimpl.attention import GLOBAL, LOCAL, global_slots

    rng = np.random.default_rng(n)
    q, k, v = (rng.standard_normal((1, H, n, D), dtype=np.float32) for _ in range(3))  # (1, H, N, D) each
    q *= np.float32(1 / np.sqrt(D))
    kind = np.full((1, n), LOCAL, np.int8)  # (1, N)
    kind[0, 0] = GLOBAL
    global_index, n_global = global_slots(kind)
    return q, k, v, kind, global_index, n_global


def transformers_config(config):
    import transformers

    layers = config.num_hidden_layers
    return transformers.LongformerConfig(**{**SHAPE, "num_hidden_layers": layers,
                                            "attention_window": [SHAPE["attention_window"]] * layers,
                                            "max_position_embeddings": config.max_position_embeddings})


def torch_threads() -> None:
    import torch

    torch.set_num_threads(cores())


def uninitialised():
    """transformers' context that skips the random initialisation (the weights are loaded right after)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        return contextlib.nullcontext()
    return no_init_weights()


# ---------------------------------------------------------------------------------------------------------------
# Runners: runner(scope, method, config, params, n) -> a no-argument function returning the output as NumPy
# ---------------------------------------------------------------------------------------------------------------

def kernel_runner(method: str, config, params: dict, n: int):
    """Passes 1-3 on fixed inputs of n tokens; returns the context (1, H, N, D)."""
    inputs = kernel_inputs(n, config.num_attention_heads, config.head_size)
    if method == "flex":
        return flex_runner(*inputs, W)
    from refimpl.backends import get_backend

    backend = get_backend(method)
    q, k, v, kind, global_index, n_global = (backend.asarray(a) for a in inputs)

    def run():
        context, _ = backend.sliding_window_attention(q, k, v, kind, global_index, n_global, W, False)
        return backend.asnumpy(context)
    return run


def flex_runner(q, k, v, kind, global_index, n_global, w):
    """FlexAttention on the CPU with the Longformer mask as a block mask; the same contract as passes 1-3.

    A local query sees the local keys of its band and every global key; a global or padding query sees nothing
    (FlexAttention returns 0 for such a row, as our kernels do). The block mask (128 x 128 blocks) skips the blocks
    outside the band, so the work is the band's, as in our kernels. torch.compile turns flex_attention into a fused
    CPU kernel (its first call compiles, in the warm-up); q is already scaled, hence scale=1.
    """
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from refimpl.attention import GLOBAL, LOCAL

    n = q.shape[2]
    kind_t = torch.from_numpy(np.asarray(kind[0]))  # (N,)

    def longformer_mask(b, h, q_idx, kv_idx):
        in_band = ((q_idx - kv_idx).abs() <= w) & (kind_t[kv_idx] == LOCAL)
        return (kind_t[q_idx] == LOCAL) & (in_band | (kind_t[kv_idx] == GLOBAL))

    block_mask = create_block_mask(longformer_mask, None, None, n, n, device="cpu")
    compiled = torch.compile(flex_attention, dynamic=False)
    q_t, k_t, v_t = (torch.from_numpy(a) for a in (q, k, v))

    def run():
        with torch.inference_mode():
            return compiled(q_t, k_t, v_t, block_mask=block_mask, scale=1.0).numpy()
    return run


def attention_runner(method: str, config, params: dict, n: int):
    """One attention layer on fixed inputs of n tokens; returns its output (1, N, C)."""
    from refimpl.attention import GLOBAL, LOCAL, global_slots

    rng = np.random.default_rng(n)
    hidden = rng.standard_normal((1, n, config.hidden_size), dtype=np.float32)  # (1, N, C)
    kind = np.full((1, n), LOCAL, np.int8)
    kind[0, 0] = GLOBAL
    prefix = "encoder.layer.0.attention.self."
    layer_params = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    if method == "transformers":
        import torch
        from transformers.models.longformer.modeling_longformer import LongformerSelfAttention as TorchAttention

        with uninitialised():
            module = TorchAttention(transformers_config(config), layer_id=0).eval()
        module.load_state_dict({k: torch.from_numpy(v) for k, v in layer_params.items()}, assign=True)
        mask = torch.zeros((1, n))
        mask[0, 0] = torch.finfo(torch.float32).max  # transformers' encoding of a global token
        hidden_t = torch.from_numpy(hidden)

        def run():
            with torch.inference_mode():
                out = module(hidden_t, attention_mask=mask, is_index_masked=mask < 0, is_index_global_attn=mask > 0,
                             is_global_attn=True)[0]
            return out.numpy()
        return run

    from refimpl.attention import LongformerSelfAttention
    from refimpl.backends import get_backend

    backend = get_backend(method)
    layer = LongformerSelfAttention({k: backend.asarray(v) for k, v in layer_params.items()}, config, 0, backend)
    global_index, n_global = global_slots(kind)
    inputs = [backend.asarray(a) for a in (hidden, kind, global_index, n_global)]

    def run():
        context, _, _ = layer(*inputs)
        return backend.asnumpy(context)
    return run


def model_runner(method: str, config, params: dict, n: int):
    """LongformerModel on fixed token ids of length n; returns last_hidden_state (1, N, C)."""
    rng = np.random.default_rng(n)
    ids = rng.integers(3, config.vocab_size, size=(1, n))
    glob = np.zeros((1, n), np.int64)
    glob[0, 0] = 1

    if method == "transformers":
        import torch
        import transformers

        with uninitialised():
            model = transformers.LongformerModel(transformers_config(config)).eval()
        # assign=True: transformers' parameters are our arrays, not a copy (the same weights, the same memory)
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()},
                                                    strict=False, assign=True)
        if unexpected or any(not k.endswith("position_ids") for k in missing):
            raise RuntimeError(f"weights do not line up: missing {missing}, unexpected {unexpected}")
        ids_t, glob_t = torch.from_numpy(ids), torch.from_numpy(glob)

        def run():
            with torch.inference_mode():
                return model(input_ids=ids_t, global_attention_mask=glob_t).last_hidden_state.numpy()
        return run

    from refimpl.backends import get_backend
    from refimpl.model import LongformerModel

    backend = get_backend(method)
    model = LongformerModel(config, params, backend=backend)

    def run():
        return backend.asnumpy(model(ids, global_attention_mask=glob).last_hidden_state)
    return run


RUNNERS = {"kernel": kernel_runner, "attention": attention_runner, "model": model_runner}


def make_runner(scope: str, method: str, n: int, layers: int | None = None):
    """The function that runs `method` at `scope` on n tokens, with the shared weights (built here)."""
    if method not in SCOPE_METHODS[scope]:
        raise ValueError(f"{method} does not run at the {scope} scope (it runs at: "
                         f"{', '.join(s for s in SCOPES if method in SCOPE_METHODS[s])})")
    if layers is None:
        layers = SHAPE["num_hidden_layers"] if scope == "model" else 1
    config = make_config(n, layers)
    params = make_params(config) if scope != "kernel" else {}
    return RUNNERS[scope](method, config, params, n)
