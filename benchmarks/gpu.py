"""GPU benchmark: the cupy backend against transformers' Longformer on CUDA, float32. Run by gpu/device_check.sh; it lives beside the CPU benchmark (benchmarks/cli.py).

    python -m benchmarks.gpu [--sizes 4096 8192 ...] [--reps 5] [--no-model]

1. One attention layer (projections, band + global columns, global rows) of longformer-base's shape: C = 768,
   H = 12, D = 64, window 512 (W = 256), batch 1, one global token (the first, as a classifier's <s>), for each N;
   transformers' `LongformerSelfAttention` vs refimpl's `LongformerSelfAttention` on the cupy backend (float32
   kernel and the float16 tensor-core kernel), same weights and inputs; the max difference to transformers too.
2. The whole encoder (12 layers of that shape, random weights saved by transformers) at N = 4096.

Times are medians over --reps calls after two warm-up calls, the GPU synchronised around each call; the first
warm-up of the cupy backend compiles its kernels (NVRTC; cached on disk afterwards). Prints a table last.
Needs CuPy, PyTorch with CUDA and transformers; installs nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import numpy as np

C, H, WINDOW = 768, 12, 512  # longformer-base-4096: hidden size, heads, attention window (both sides)


def synchronize():
    import cupy
    import torch

    cupy.cuda.Device().synchronize()
    torch.cuda.synchronize()


def median_ms(fn, reps):
    for _ in range(2):
        fn()
    synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def free_memory():
    import cupy
    import torch

    cupy.get_default_memory_pool().free_all_blocks()
    torch.cuda.empty_cache()


def hf_config(num_hidden_layers=1, **extra):
    import transformers

    return transformers.LongformerConfig(
        hidden_size=C, num_attention_heads=H, intermediate_size=4 * C, num_hidden_layers=num_hidden_layers,
        attention_window=[WINDOW] * num_hidden_layers, max_position_embeddings=4098, vocab_size=50265, pad_token_id=1,
        layer_norm_eps=1e-5, type_vocab_size=1, **extra)


def bench_attention_layer(sizes, reps):
    """rows: (N, transformers ms, cupy float32 ms, cupy float16 ms, max |float32 - transformers|)."""
    import cupy
    import torch
    from transformers.models.longformer.modeling_longformer import LongformerSelfAttention as HFSelfAttention

    from gpu.backend import CupyBackend
    from refimpl.attention import LongformerSelfAttention, global_slots
    from refimpl.config import LongformerConfig

    torch.manual_seed(0)
    hf_layer = HFSelfAttention(hf_config(), layer_id=0).cuda().eval()
    weights = {name: t.detach().cpu().numpy() for name, t in hf_layer.state_dict().items()}  # query.weight, ...
    config = LongformerConfig(hidden_size=C, num_attention_heads=H, intermediate_size=4 * C, num_hidden_layers=1,
                              attention_window=WINDOW)
    ours = {}
    for precision in ("float32", "float16"):
        backend = CupyBackend(precision=precision)
        params = {name: backend.asarray(w) for name, w in weights.items()}
        ours[precision] = LongformerSelfAttention(params, config, 0, backend)

    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        hidden = rng.standard_normal((1, n, C), dtype=np.float32)  # (B, N, C)
        kind = np.ones((1, n), np.int8)  # (B, N): all local ...
        kind[:, 0] = 2  # ... but the first token, global
        global_index, n_global = global_slots(kind)  # (B, G), (B,)

        # transformers: the layer's mask as LongformerModel hands it down: 0 local, > 0 global, < 0 padding
        hidden_t = torch.from_numpy(hidden).cuda()
        mask_t = torch.zeros((1, n), device="cuda")
        mask_t[:, 0] = 10000.0

        def run_transformers():
            with torch.no_grad():
                return hf_layer(hidden_t, attention_mask=mask_t, is_index_masked=mask_t < 0,
                                is_index_global_attn=mask_t > 0, is_global_attn=True)[0]  # (B, N, C)

        dev = [cupy.asarray(a) for a in (hidden, kind, global_index, n_global)]

        def run_ours(precision):
            return ours[precision](*dev)[0]  # (B, N, C)

        reference = run_transformers().cpu().numpy()
        difference = float(np.abs(cupy.asnumpy(run_ours("float32")) - reference).max())
        t_hf = median_ms(run_transformers, reps)
        t_32 = median_ms(lambda: run_ours("float32"), reps)
        t_16 = median_ms(lambda: run_ours("float16"), reps)
        rows.append((n, t_hf, t_32, t_16, difference))
        free_memory()  # cached blocks of the smaller size; this size's arrays go when the next one rebinds them
    return rows


def bench_model(n, reps):
    """(N, transformers ms, cupy float32 ms, max |difference| of last_hidden_state)."""
    import torch
    import transformers

    from refimpl.backends import asnumpy
    from refimpl.model import LongformerModel

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    hf_model = transformers.LongformerModel(hf_config(num_hidden_layers=12)).eval()
    with tempfile.TemporaryDirectory() as directory:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf_model.save_pretrained(directory)
        model = LongformerModel.from_pretrained(directory, backend="cupy")
    hf_model = hf_model.cuda()

    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50265, size=(1, n))
    mask = np.ones((1, n), np.int64)
    glob = np.zeros((1, n), np.int64)
    glob[:, 0] = 1
    ids_t, mask_t, glob_t = (torch.from_numpy(a).cuda() for a in (ids, mask, glob))

    def run_transformers():
        with torch.no_grad():
            return hf_model(input_ids=ids_t, attention_mask=mask_t, global_attention_mask=glob_t).last_hidden_state

    def run_ours():
        return model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state

    difference = float(np.abs(asnumpy(run_ours()) - run_transformers().cpu().numpy()).max())
    return n, median_ms(run_transformers, reps), median_ms(run_ours, reps), difference


def table(layer_rows, model_row, device):
    lines = [f"GPU: {device}; float32 unless named; median ms",
             f"attention layer, B=1 C={C} H={H} D={C // H} W={WINDOW // 2}, 1 global token",
             "      N | transformers | cupy f32 | cupy f16 | f32 speedup | max|f32 - transformers|",
             "--------+--------------+----------+----------+-------------+------------------------"]
    for n, t_hf, t_32, t_16, diff in layer_rows:
        lines.append(f"{n:7d} | {t_hf:12.2f} | {t_32:8.2f} | {t_16:8.2f} | {t_hf / t_32:10.2f}x | {diff:.2e}")
    if model_row is not None:
        n, t_hf, t_ours, diff = model_row
        lines.append(f"whole model (12 layers) N={n}: transformers {t_hf:.1f} ms, cupy f32 {t_ours:.1f} ms "
                     f"({t_hf / t_ours:.2f}x), max|difference| of last_hidden_state {diff:.2e}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384, 32768, 65536],
                        help="sequence lengths of the attention-layer benchmark (multiples of 512 for transformers)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--model-tokens", type=int, default=4096)
    parser.add_argument("--no-model", action="store_true", help="skip the whole-model benchmark")
    args = parser.parse_args(argv)
    for n in args.sizes:
        if n % WINDOW:
            parser.error(f"transformers needs N to be a multiple of the window {WINDOW}; got {n}")

    from gpu.backend import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"the cupy backend cannot run here: {reason}")
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("PyTorch sees no CUDA device; the comparison needs transformers on CUDA")
    device = torch.cuda.get_device_name()
    layer_rows = bench_attention_layer(args.sizes, args.reps)
    free_memory()
    model_row = None if args.no_model else bench_model(args.model_tokens, args.reps)
    print(table(layer_rows, model_row, device))


if __name__ == "__main__":
    main()
