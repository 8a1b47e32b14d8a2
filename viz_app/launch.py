"""`longformer-lab app`: start the Streamlit visualizer (viz_app/app.py) headless, without usage statistics."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
MODEL_ENV = "LONGFORMER_LAB_MODEL"  # read by viz_app/views/common.py as the checkpoint field's starting value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--address", default=None, help="address to listen on (default: Streamlit's, all interfaces)")
    p.add_argument("--model", default=None, help="a Longformer checkpoint folder to start with (default: the "
                   "embedded all-MiniLM-L6-v2 converted to a Longformer); the sidebar can change it")


def command(args) -> list[str]:
    """The `streamlit run` command line for these arguments."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.port", str(args.port), "--client.toolbarMode", "minimal"]
    if args.address:
        cmd += ["--server.address", args.address]
    return cmd


def run(args) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must lie in 1..65535, got {args.port}")
    env = dict(os.environ)
    if args.model:
        if not Path(args.model).expanduser().is_dir():
            raise ValueError(f"--model {args.model!r} is not a folder")
        env[MODEL_ENV] = str(Path(args.model).expanduser().resolve())
    print(f"longformer-lab app: serving on http://localhost:{args.port} (Ctrl+C to stop)", flush=True)
    cmd = command(args)
    # become the server rather than wait for it: Ctrl+C and kill then reach Streamlit itself, and no child is left
    os.execve(cmd[0], cmd, env)
