"""The `longformer-lab` command, and the one place in `refimpl` that prints.

    longformer-lab app                         the Streamlit visualizer on the default model
    longformer-lab run [TEXT] [--model DIR]    tokenize a text, run the model, print shapes, timing, global attention
    longformer-lab convert SRC DST             a BERT or RoBERTa checkpoint -> a Longformer checkpoint
    longformer-lab bench                       time and memory against sequence length, every backend
    longformer-lab backends                    which backends run here, and why not

`app` and `bench` live with their packages (viz_app.launch, benchmarks.cli) and are imported only when chosen, so
that `convert` needs neither the app's nor the benchmark's packages.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

import numpy as np

from refimpl import LongformerModel, asnumpy, available_backends
from refimpl.io.convert import convert
from refimpl.io.default_model import resolve_model_dir
from refimpl.io.tokenizer import LongformerTokenizer

SAMPLE = ("Longformer: The Long-Document Transformer. Transformer-based models are unable to process long sequences "
          "due to their self-attention operation, which scales quadratically with the sequence length. To address "
          "this limitation, we introduce the Longformer with an attention mechanism that scales linearly with "
          "sequence length, making it easy to process documents of thousands of tokens or longer.")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="?", default=SAMPLE, help="the text to run (default: the paper's abstract)")
    p.add_argument("--model", default=None, help="a Longformer checkpoint folder or Hub repository name, such as "
                   "allenai/longformer-base-4096 (default: the embedded all-MiniLM-L6-v2 converted to a Longformer "
                   "with window 128 and 4096 positions)")
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
    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    if not args.text.strip():
        raise ValueError("the text is empty; give some words to run")
    directory = resolve_model_dir() if args.model is None else args.model  # a folder or a Hub name
    overrides = {} if args.window is None else {"attention_window": args.window}
    t0 = time.perf_counter()
    model = LongformerModel.from_pretrained(directory, backend=args.backend, **overrides)
    tokenizer = LongformerTokenizer.from_pretrained(directory)
    load_s = time.perf_counter() - t0
    cfg = model.config

    enc = tokenizer(args.text, truncation=True, max_length=cfg.max_tokens, return_tensors="np",
                    return_overflowing_tokens=False)
    ids = enc["input_ids"]
    n = ids.shape[1]
    total = len(tokenizer(args.text)["input_ids"])
    if total > n:
        print(f"longformer-lab run: note: the text has {total} tokens, more than the {cfg.max_tokens} the model's "
              f"position table holds; only the first {n} were run", file=sys.stderr)
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
    for name, why in available_backends().items():
        print(f"{name:6s} {'available' if why is None else 'unavailable: ' + why}")
    return 0


def add_convert_arguments(parser) -> None:
    parser.add_argument("src", help="a transformers BERT or RoBERTa checkpoint: a folder (config.json, "
                                    "model.safetensors, tokenizer files) or a Hub repository name")
    parser.add_argument("dst", help="the folder to write the Longformer checkpoint into (new or empty)")
    parser.add_argument("--attention-window", type=int, default=512, metavar="W",
                        help="the full local window, both sides, even (default 512, as longformer-base-4096)")
    parser.add_argument("--max-positions", type=int, default=4096, metavar="N",
                        help="tokens the new position table holds; the learned ones are repeated (default 4096)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it is a checkpoint folder (holds "
                        "config.json); afterwards DST holds only the converted checkpoint")
    parser.add_argument("--revision", default=None, help="the Hub revision of SRC (a branch, tag or commit)")


def run_convert(args) -> int:
    s = convert(args.src, args.dst, attention_window=args.attention_window, max_positions=args.max_positions,
                progress=True, overwrite=args.overwrite, revision=args.revision)
    print(f"converted {s.source_type} checkpoint {s.source}")
    print(f"  layers            {s.num_layers} (hidden size {s.hidden_size})")
    print(f"  positions         {s.source_positions} -> {s.positions} (table of {s.max_position_embeddings} rows, "
          f"first position at row {s.pad_token_id + 1})")
    print(f"  attention window  {s.attention_window}")
    print(f"  special tokens    pad {s.pad_token_id}, bos {s.bos_token_id}, eos {s.eos_token_id}, sep {s.sep_token_id}")
    print(f"  copied            {s.copied} tensors; {s.global_projections} global projections from the local ones")
    if s.not_copied:
        shown = ", ".join(s.not_copied[:6]) + (f" and {len(s.not_copied) - 6} more" if len(s.not_copied) > 6 else "")
        print(f"  not copied        {len(s.not_copied)} tensors with no place in LongformerModel: {shown}")
    for note in s.notes:
        print(f"  note              {note}")
    print(f"wrote {s.destination}: {', '.join(s.files)}")
    return 0


# subcommand -> (module with add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS = {
    "app": ("viz_app.launch", "open the Streamlit visualizer (local and global attention on real text)"),
    "run": ("refimpl.cli", "run the model on a text and report shapes, timing and where global attention went"),
    "convert": ("refimpl.cli", "convert a BERT or RoBERTa checkpoint into a Longformer checkpoint"),
    "bench": ("benchmarks.cli", "time and peak memory against sequence length for every backend"),
    "backends": ("refimpl.cli", "list the backends and whether they run here"),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="longformer-lab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # import only the chosen subcommand's module: `convert` must not need the app's or the benchmark's packages
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    module = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            (getattr(module, f"add_{name}_arguments", None) or module.add_arguments)(p)
    args = parser.parse_args(argv)
    run = getattr(module, f"run_{args.command}", None) or module.run
    try:
        return int(run(args) or 0)
    except ValueError as e:  # every bad input is a ValueError with a message meant for the user
        print(f"longformer-lab {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
