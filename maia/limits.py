"""The limits and places a maia process runs with, read from the environment in one place.

    limits = Limits.from_env()            # once, when the app or the CLI starts
    piece = read(path, max_bytes=limits.max_input_bytes, max_quarters=limits.max_quarters)
    config.validate(limits.max_tokens)
    build_prompt(vocab, composer, piece, max_tokens=limits.max_prompt_tokens)

The library's functions take these as arguments, with the defaults below; no other module of maia/ reads
``os.environ``. A value that cannot be used (``MAIA_TIME_BUDGET=soon``) raises MaiaError naming the variable,
so a server never starts on a setting it silently ignored.

| variable | field | default |
|---|---|---|
| MAIA_MAX_MIDI_BYTES | max_input_bytes | 2 MiB: larger uploads never reach a parser |
| MAIA_MAX_QUARTERS | max_quarters | 100,000 quarter notes (~14 h at 120 qpm) |
| MAIA_MAX_TOKENS | max_tokens | 4,096 new tokens per request |
| MAIA_MAX_PROMPT_TOKENS | max_prompt_tokens | 2,048: longer prompts keep their last bars |
| MAIA_TIME_BUDGET | time_budget | 120 s per request, finishing included |
| MAIA_CONCURRENCY | concurrency | 0: 2 requests at once on a CPU, 4 on CUDA |
| MAIA_KEEP_FILES | keep_files | 3,600 s a request's files are kept (Gradio copies them within seconds) |
| MAIA_MODELS_DIR | models_dir | "": the shipped assets/models/ |
| MAIA_SOUNDFONT | soundfont | "": the lookup of maia.synth.find_soundfont |
| MAIA_DEVICE | device | auto: CUDA when available, else the CPU |
| MAIA_SAMPLING | sampling | process: the server samples in processes of its own (maia/sampler.py); thread: in its own |
| MAIA_DATA_DIR | data_dir | "": the gallery's database and files in $XDG_DATA_HOME/maia (~/.local/share/maia) |
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from maia.errors import MaiaError

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_QUARTERS = 100_000
DEFAULT_MAX_TOKENS = 4096
DEFAULT_MAX_PROMPT_TOKENS = 2048
DEFAULT_TIME_BUDGET = 120.0
DEFAULT_KEEP_FILES = 3600.0
DEVICES = ("auto", "cpu", "cuda")
SAMPLING = ("process", "thread")


@dataclass(frozen=True)
class Limits:
    max_input_bytes: int = DEFAULT_MAX_BYTES  # MAIA_MAX_MIDI_BYTES
    max_quarters: int = DEFAULT_MAX_QUARTERS  # MAIA_MAX_QUARTERS
    max_tokens: int = DEFAULT_MAX_TOKENS  # MAIA_MAX_TOKENS
    max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS  # MAIA_MAX_PROMPT_TOKENS
    time_budget: float = DEFAULT_TIME_BUDGET  # MAIA_TIME_BUDGET, seconds
    concurrency: int = 0  # MAIA_CONCURRENCY (0: 2 on a CPU, 4 on CUDA)
    keep_files: float = DEFAULT_KEEP_FILES  # MAIA_KEEP_FILES, seconds
    models_dir: str = ""  # MAIA_MODELS_DIR ("": assets/models/)
    soundfont: str = ""  # MAIA_SOUNDFONT ("": maia.synth's lookup order)
    device: str = "auto"  # MAIA_DEVICE: auto, cpu or cuda
    sampling: str = "process"  # MAIA_SAMPLING: where a server samples, process or thread
    data_dir: str = ""  # MAIA_DATA_DIR: the gallery's home ("": see data_path)

    def __post_init__(self):
        for name in ("max_input_bytes", "max_quarters", "max_tokens", "max_prompt_tokens"):
            if getattr(self, name) < 1:
                raise MaiaError(f"{ENV[name]}={getattr(self, name)}: must be at least 1")
        for name in ("time_budget", "concurrency", "keep_files"):
            if getattr(self, name) < 0:
                raise MaiaError(f"{ENV[name]}={getattr(self, name)}: must not be negative")
        if self.device not in DEVICES:
            raise MaiaError(f"MAIA_DEVICE={self.device}: must be one of {', '.join(DEVICES)}")
        if self.sampling not in SAMPLING:
            raise MaiaError(f"MAIA_SAMPLING={self.sampling}: must be one of {', '.join(SAMPLING)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The limits set by MAIA_* variables in ``environ`` (default: this process's environment), the
        defaults for the rest. MaiaError names a variable whose value cannot be used."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV[f.name], "").strip()
            if not raw:
                continue
            kind = {"int": int, "float": float}.get(f.type, str)
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise MaiaError(f"{ENV[f.name]}={raw}: not {'an integer' if kind is int else 'a number'}") from None
        return cls(**values)

    def torch_device(self) -> str:
        """The device models run on: ``device``, with auto meaning CUDA when available, else the CPU."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def data_path(self, environ: Mapping[str, str] | None = None) -> Path:
        """The gallery's folder: ``data_dir``, else $XDG_DATA_HOME/maia, else ~/.local/share/maia."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        environ = os.environ if environ is None else environ
        base = environ.get("XDG_DATA_HOME", "").strip()
        return (Path(base) if base else Path.home() / ".local" / "share") / "maia"

    def serving_concurrency(self, device: str) -> int:
        """Requests served at once: ``concurrency``, or 2 on a CPU and 4 on CUDA."""
        return self.concurrency or (4 if device == "cuda" else 2)


ENV = {"max_input_bytes": "MAIA_MAX_MIDI_BYTES", "max_quarters": "MAIA_MAX_QUARTERS", "max_tokens": "MAIA_MAX_TOKENS",
       "max_prompt_tokens": "MAIA_MAX_PROMPT_TOKENS", "time_budget": "MAIA_TIME_BUDGET",
       "concurrency": "MAIA_CONCURRENCY", "keep_files": "MAIA_KEEP_FILES", "models_dir": "MAIA_MODELS_DIR", "soundfont": "MAIA_SOUNDFONT",
       "device": "MAIA_DEVICE", "sampling": "MAIA_SAMPLING", "data_dir": "MAIA_DATA_DIR"}
