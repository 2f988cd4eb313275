"""Which models are installed, and what their folders say, without torch.

A model folder holds ``config.json`` (the model config, the vocabulary, how it was trained) and
``model.safetensors``. Everything here reads only the JSON, so ``python -m maia info`` and ``encode`` answer
without importing torch; maia.checkpoint loads the weights.

    installed_models()              # {"piano": Path(...), "sparse": ..., "lstm": ...}, in the order offered
    resolve_model("piano")          # a name under models_root(), or a folder -> the folder
    read_vocab(resolve_model("piano"))

The shipped models live in ``assets/models/`` of the repository, and in ``maia/assets/models/`` of an
installed package (pyproject.toml maps one onto the other), so both a checkout and ``pip install .`` find them.
"""

from __future__ import annotations

import json
from pathlib import Path

from maia.errors import MaiaError
from maia.vocab import Vocab

FORMAT = "maia-model/1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
REQUIRED_KEYS = ("format", "kind", "model", "vocab")
KINDS = ("gpt", "lstm", "sparse_gpt")  # maia.models.MODELS' keys, named here so reading a config needs no torch
PREFERRED_MODELS = ("piano", "gpt", "sparse", "lstm")  # offered in this order; the default is the first installed


def _assets() -> Path:
    """The shipped assets: maia/assets/ in an installed package, else the repository's assets/."""
    here = Path(__file__).resolve().parent
    installed = here / "assets"
    return installed if installed.is_dir() else here.parent / "assets"


ASSETS = _assets()
DEFAULT_ROOT = ASSETS / "models"  # the shipped checkpoints
PROMPTS_DIR = ASSETS / "prompts"  # the shipped prompts (the Lacrimosa opening, ...)


class CheckpointError(MaiaError, ValueError):
    """A model folder that cannot be loaded; the message names the folder and the problem."""


def read_config(folder: str | Path) -> dict:
    """Parse and check a model folder's config.json; CheckpointError if it is missing or malformed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist")
    path = folder / CONFIG
    if not path.is_file():
        raise CheckpointError(f"model folder {folder} has no {CONFIG}")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not {type(cfg).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise CheckpointError(f"{path} lacks the keys {missing}")
    if cfg["format"] != FORMAT:
        raise CheckpointError(f"{path} has format {cfg['format']!r}; this version of maia reads {FORMAT!r}")
    if cfg["kind"] not in KINDS:
        raise CheckpointError(f"{path}: unknown model kind {cfg['kind']!r}; known: {', '.join(sorted(KINDS))}")
    if not isinstance(cfg["model"], dict) or not isinstance(cfg["vocab"], dict):
        raise CheckpointError(f"{path}: 'model' and 'vocab' must be JSON objects")
    return cfg


def read_vocab(folder: str | Path, cfg: dict | None = None) -> Vocab:
    """A model folder's vocabulary, without the weights; CheckpointError naming the folder if invalid.
    ``cfg``: its config.json, when already read."""
    cfg = read_config(folder) if cfg is None else cfg
    try:
        return Vocab.from_dict(cfg["vocab"])
    except ValueError as e:
        raise CheckpointError(f"model folder {folder}: {e}") from None


def list_models(root: str | Path = DEFAULT_ROOT) -> dict[str, Path]:
    """Model folders under `root` (those holding a config.json), by folder name, sorted."""
    root = Path(root)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / CONFIG).is_file()}


def resolve_model(name_or_dir: str | Path, root: str | Path = DEFAULT_ROOT) -> Path:
    """A model folder from a path to one or from the name of one under `root`."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    models = list_models(root)
    if str(name_or_dir) in models:
        return models[str(name_or_dir)]
    known = ", ".join(models) or "none"
    raise CheckpointError(f"no model folder {name_or_dir!r}, and no model of that name in {root} (found: {known})")


def models_root(folder: str | Path | None = None) -> Path:
    """Where installed models live: ``folder`` (the operator's, maia.limits' MAIA_MODELS_DIR) if given, else the
    shipped assets/models/. Requests name a model, never a path."""
    return Path(folder).expanduser() if folder else DEFAULT_ROOT


def installed_models(root: str | Path | None = None) -> dict[str, Path]:
    """The model folders under ``models_root(root)`` by name, in the order they are offered: piano, gpt,
    sparse, lstm when installed, then the rest by name. The one registry of the app and the CLI."""
    models = list_models(models_root(root))
    order = [m for m in PREFERRED_MODELS if m in models] + [m for m in models if m not in PREFERRED_MODELS]
    return {m: models[m] for m in order}


def default_model(root: str | Path | None = None) -> str | None:
    """The model used when none is named: the first installed one (``installed_models``), or None."""
    return next(iter(installed_models(root)), None)
