"""The playground in a subprocess, for the load and latency benchmarks and the browser test.

    with serve(models_dir) as (url, pid): ...      # app.py on a free port of 127.0.0.1, stopped by PID
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pick_model(model_dir: str | None) -> tuple[Path, str]:
    """(models folder, its default model) of ``--model-dir``, else of the shipped assets/models; SystemExit with
    one line when the folder holds no model."""
    from maia.checkpoint import DEFAULT_ROOT, default_model

    root = Path(model_dir) if model_dir else DEFAULT_ROOT
    name = default_model(root)
    if name is None:
        raise SystemExit(f"no model installed in {root}")
    return root, name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(models_dir: Path, log: Path | None = None, timeout: float = 180, extra_env: dict | None = None):
    """app.py on a free port of 127.0.0.1 serving ``models_dir``; yields (url, pid); stops it by its PID."""
    port = free_port()
    env = {**os.environ, "MAIA_MODELS_DIR": str(models_dir), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", **(extra_env or {})}
    out = log.open("w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with status {proc.returncode}" + (f"; see {log}" if log else ""))
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not serve within {timeout:.0f} s") from None
                time.sleep(0.5)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if log:
            out.close()
