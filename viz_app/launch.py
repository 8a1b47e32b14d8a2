"""`longformer-lab app`: start the Streamlit visualizer (viz_app/app.py) on localhost, without usage statistics,
and open it in the browser when there is a display to open it on.

Streamlit itself runs headless: its own browser opening asks for an e-mail address on the first run. A small
detached helper waits for the server's health check and opens the page instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from viz_app.core.checkpoints import is_local

APP = Path(__file__).resolve().parent / "app.py"
MODEL_ENV = "LONGFORMER_LAB_MODEL"  # read by viz_app/views/sidebar.py as the checkpoint field's starting value
ROOTS_ENV = "LONGFORMER_LAB_MODEL_ROOTS"  # set beyond localhost: the only folders the checkpoint field may load
OPENER = """import sys, time, urllib.request, webbrowser
url = sys.argv[1]
for _ in range(240):
    try:
        if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
            webbrowser.open(url)
            break
    except OSError:
        time.sleep(0.5)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--host", "--address", dest="host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for every interface, "
                        "which also restricts the checkpoint field to the allowed folders)")
    p.add_argument("--model", default=None, help="a Longformer checkpoint folder to start with (default: the "
                   "embedded all-MiniLM-L6-v2 converted to a Longformer); the sidebar can change it")
    p.add_argument("--model-root", action="append", default=[], metavar="DIR",
                   help="beyond localhost: a folder whose checkpoints visitors may load (repeatable)")
    p.add_argument("--no-browser", action="store_true", help="do not open the browser")


def has_display() -> bool:
    """Whether a browser can be opened here: macOS and Windows always; elsewhere an X or Wayland display."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def url(args) -> str:
    host = "localhost" if is_local(args.host) or args.host in ("0.0.0.0", "::") else args.host
    return f"http://{host}:{args.port}"


def command(args) -> list[str]:
    """The `streamlit run` command line for these arguments."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.port", str(args.port), "--server.address", args.host, "--client.toolbarMode", "minimal"]


def environment(args, base: dict) -> dict:
    """The server's environment: the starting checkpoint and, beyond localhost, the allowed roots."""
    env = dict(base)
    if args.model:
        if not Path(args.model).expanduser().is_dir():
            raise ValueError(f"--model {args.model!r} is not a folder")
        env[MODEL_ENV] = str(Path(args.model).expanduser().resolve())
    if not is_local(args.host):
        roots = [str(Path(r).expanduser().resolve()) for r in args.model_root]
        if args.model:
            roots.append(env[MODEL_ENV])
        env[ROOTS_ENV] = os.pathsep.join(roots)  # the default model's cache is always allowed (sidebar.py)
    else:
        env.pop(ROOTS_ENV, None)
    return env


def run(args) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must lie in 1..65535, got {args.port}")
    env = environment(args, os.environ)
    where = "this machine only" if is_local(args.host) else f"{args.host}: reachable from other machines"
    print(f"longformer-lab app: serving on {url(args)} ({where}; Ctrl+C to stop)", flush=True)
    if not args.no_browser and has_display():
        subprocess.Popen([sys.executable, "-c", OPENER, url(args)], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cmd = command(args)
    # become the server rather than wait for it: Ctrl+C and kill then reach Streamlit itself, and no child is left
    os.execve(cmd[0], cmd, env)
