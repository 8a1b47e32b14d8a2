"""The `longformer-lab` command. Each subcommand lives in its own module; this file only wires them.

    longformer-lab app                         the Streamlit visualizer on the default model
    longformer-lab run [TEXT] [--model DIR]    tokenize a text, run the model, print shapes, timing, global attention
    longformer-lab convert SRC DST             a BERT or RoBERTa checkpoint -> a Longformer checkpoint
    longformer-lab bench                       time and memory against sequence length, every backend
    longformer-lab backends                    which backends run here, and why not
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS = {
    "app": ("viz_app.launch", "open the Streamlit visualizer (local and global attention on real text)"),
    "run": ("refimpl.run", "run the model on a text and report shapes, timing and where global attention went"),
    "convert": ("refimpl.convert", "convert a BERT or RoBERTa checkpoint into a Longformer checkpoint"),
    "bench": ("benchmarks.scaling", "time and peak memory against sequence length for every backend"),
    "backends": ("refimpl.run", "list the backends and whether they run here"),
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
