"""`longformer-lab run`: tokenize a text, run the model, report shapes, timing and where global attention went.
`longformer-lab backends`: which backends run here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SAMPLE = ("Longformer: The Long-Document Transformer. Transformer-based models are unable to process long sequences "
          "due to their self-attention operation, which scales quadratically with the sequence length. To address "
          "this limitation, we introduce the Longformer with an attention mechanism that scales linearly with "
          "sequence length, making it easy to process documents of thousands of tokens or longer.")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="?", default=SAMPLE, help="the text to run (default: the paper's abstract)")
    p.add_argument("--model", default=None, help="a Longformer checkpoint folder (default: the embedded "
                   "all-MiniLM-L6-v2 converted to a Longformer with window 128 and 4096 positions)")
    p.add_argument("--backend", default="numpy", help="numpy, numba or cupy (see `longformer-lab backends`)")
    p.add_argument("--window", type=int, default=None, help="attention window (even), replacing the checkpoint's")
    p.add_argument("--global-tokens", default="first",
                   help="'none', 'first' (default) or comma-separated token positions given global attention")
    p.add_argument("--repeat", type=int, default=3, help="forward passes to time (median reported)")


def parse_globals(spec: str, n: int) -> list[int]:
    spec = spec.strip().lower()
    if spec == "none":
        return []
    if spec == "first":
        return [0]
    try:
        positions = sorted({int(s) for s in spec.split(",") if s.strip()})
    except ValueError:
        raise ValueError(f"--global-tokens must be 'none', 'first' or comma-separated integers, got {spec!r}") from None
    bad = [p for p in positions if not 0 <= p < n]
    if bad:
        raise ValueError(f"global token position {bad[0]} is outside the {n} tokens of the input (0..{n - 1})")
    return positions


def run_run(args) -> int:
    from refimpl import LongformerModel, LongformerTokenizer, asnumpy
    from refimpl.default_model import resolve_model_dir

    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    if not args.text.strip():
        raise ValueError("the text is empty; give some words to run")
    directory = resolve_model_dir(args.model)
    overrides = {} if args.window is None else {"attention_window": args.window}
    t0 = time.perf_counter()
    model = LongformerModel.from_pretrained(directory, backend=args.backend, **overrides)
    tokenizer = LongformerTokenizer.from_pretrained(directory)
    load_s = time.perf_counter() - t0
    cfg = model.config

    enc = tokenizer(args.text, truncation=True, max_length=cfg.max_tokens)
    ids = enc["input_ids"]
    n = ids.shape[1]
    glob = np.zeros_like(ids)
    glob[0, parse_globals(args.global_tokens, n)] = 1

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = model(ids, attention_mask=enc["attention_mask"], global_attention_mask=glob, output_attentions=True)
        last = asnumpy(out.last_hidden_state)
        times.append(time.perf_counter() - t0)

    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    print(f"model      {directory}")
    print(f"           {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, {cfg.num_attention_heads} heads, "
          f"window {cfg.attention_window}, up to {cfg.max_tokens} tokens")
    print(f"backend    {args.backend}   (load {load_s:.2f} s, forward median {np.median(times) * 1e3:.1f} ms "
          f"over {args.repeat})")
    print(f"tokens     {n}: {' '.join(tokens[:12])}{' ...' if n > 12 else ''}")
    print(f"last_hidden_state {last.shape}   pooler_output "
          f"{None if out.pooler_output is None else asnumpy(out.pooler_output).shape}")
    print(f"attentions {len(out.attentions)} x {asnumpy(out.attentions[0]).shape}  (batch, heads, tokens, "
          f"globals + window + 1)")
    if out.global_attentions is None:
        print("global attention: none (every token attends only to its window)")
        return 0
    # where global attention went, last layer, mean over heads
    g_probs = asnumpy(out.global_attentions[-1])[0].mean(axis=0)  # (N, G)
    local = asnumpy(out.attentions[-1])[0].mean(axis=0)  # (N, G + 2W + 1)
    positions = np.flatnonzero(glob[0])
    print(f"global_attentions {len(out.global_attentions)} x {asnumpy(out.global_attentions[0]).shape}")
    for s, pos in enumerate(positions):
        top = np.argsort(g_probs[:, s])[::-1][:5]
        shown = ", ".join(f"{tokens[j]!r} {g_probs[j, s]:.2f}" for j in top)
        share = local[glob[0] == 0, s].mean()
        print(f"  global token {pos} {tokens[pos]!r} attends most to: {shown}")
        print(f"  local tokens give it {share:.1%} of their attention on average (last layer, mean over heads)")
    return 0


def add_backends_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run_backends(args) -> int:
    from refimpl import available_backends

    for name, why in available_backends().items():
        print(f"{name:6s} {'available' if why is None else 'unavailable: ' + why}")
    return 0
