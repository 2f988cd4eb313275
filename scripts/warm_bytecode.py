"""Writes the bytecode of what make test's processes import, once. In a new virtual environment nothing is compiled
yet, and make test starts many processes at once that import the same libraries: the pytest workers, the app
servers and their sampler processes, the training and CLI subprocesses. Each compiles torch, gradio and music21 for itself
until one of them has written the bytecode. The Makefile runs this while apt-get still installs a new machine's Debian
packages, when the machine mostly waits on the network, and stops it when apt-get is done: what it has written by then
is kept (Python writes each file's bytecode whole). With an apt-get that waited 25 s, a fresh clone's make test took
272 and 277 s with it against 290 and 306 s without (docs/testing.md, Run 13).

Two processes import the heavy libraries, torch's side and the page's side, so that no file is compiled twice;
then this one imports every module of maia, training and bench. What a module imports only when it runs (torch's
compiler stack, which AdamW loads; music21's MusicXML writer; Verovio) is named here. A library that cannot load
yet (pyfluidsynth while apt-get is still installing FluidSynth) is skipped: this only saves time, and never fails.

    python scripts/warm_bytecode.py
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_SIDE = ("torch", "torch.nn", "torch.optim", "torch._dynamo", "torch.distributed.run", "safetensors.torch",
              "numpy")
PAGE_SIDE = ("gradio", "gradio.http_server", "uvicorn.main", "uvicorn.lifespan.on", "uvicorn.loops.auto",
             "uvicorn.protocols.http.h11_impl", "uvicorn.protocols.websockets.auto", "gradio_client",
             "matplotlib.figure", "matplotlib.backends.backend_agg", "music21", "music21.musicxml.m21ToXml",
             "music21.midi.translate", "verovio", "symusic", "mido", "PIL.Image", "fluidsynth", "playwright.sync_api",
             "hypothesis", "xdist", "pytest_timeout")  # gradio's server (uvicorn) loads when app.py launches
OWN = ("maia", "training", "bench")


def _import(names) -> None:
    for name in names:
        with contextlib.suppress(Exception, SystemExit):  # a library that cannot load here is only not warmed
            importlib.import_module(name)


def _own_modules():
    for package in OWN:
        yield package
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if not info.name.endswith(".__main__"):  # the CLI itself: importing it runs it
                yield info.name


def main(argv: list[str]) -> int:
    if argv == ["torch"]:
        _import(TORCH_SIDE)
        return 0
    sys.path.insert(0, str(ROOT))
    children: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, lambda *_: ([c.terminate() for c in children], os._exit(0)))  # the Makefile's stop
    children.append(subprocess.Popen([sys.executable, __file__, "torch"]))
    _import(PAGE_SIDE)
    children[0].wait()
    _import(_own_modules())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
