"""Save and load a model folder: `model.safetensors` (weights) + `config.json` (everything else).

config.json describes the checkpoint completely, so loading is `Model(Config(**cfg["model"]))` followed
by the weights; nothing is ever unpickled:

    {"format": "maia-model/1", "kind": "gpt", "model": {...GPTConfig...}, "vocab": {...Vocab.to_dict()...},
     ...extra: training settings, data summary, metrics}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from maia.errors import MaiaError
from maia.models import MODELS, build_model
from maia.vocab import Vocab

FORMAT = "maia-model/1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
REQUIRED_KEYS = ("format", "kind", "model", "vocab")
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "assets" / "models"  # the shipped checkpoints


class CheckpointError(MaiaError, ValueError):
    """A model folder that cannot be loaded; the message names the folder and the problem."""


def _distinct_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict with tied tensors kept once, under their first name.

    safetensors refuses tensors that share memory, and the GPT's lm_head.weight *is* its token
    embedding. Loading copies into the surviving name's Parameter, which both modules share, so the tie
    survives without being stored twice. The same model structure always drops the same names."""
    seen, state = set(), {}
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if key not in seen:
            seen.add(key)
            state[name] = t
    return state


def save_model(
    folder: str | Path,
    model: nn.Module,
    kind: str,
    model_config,
    vocab: Vocab,
    extra: dict | None = None,
    dtype: torch.dtype | None = torch.float16,
) -> Path:
    """Write `model` to `folder` (created if needed) as model.safetensors + config.json.

    model_config: the model's config dataclass. extra: JSON-serialisable training settings, data summary,
    metrics, stored at the top level of config.json. dtype: floating weights are stored in this dtype
    (float16 halves the file); None keeps the model's own dtype. Returns the folder."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(MODELS))}")
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(REQUIRED_KEYS))
    if clash:
        raise ValueError(f"extra keys {clash} would overwrite reserved config.json keys")
    config = {"format": FORMAT, "kind": kind, "model": asdict(model_config), "vocab": vocab.to_dict(), **extra}
    text = json.dumps(config, indent=1)  # before any file is written: fails on non-JSON extras

    state = {}
    for name, t in _distinct_state(model).items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[name] = t.contiguous()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Atomic: each file is written under a temporary name and renamed over the old one, so a run killed
    # mid-save leaves the previous checkpoint whole. Weights go first: a config never describes
    # weights that are not there yet.
    tmp = folder / f".{WEIGHTS}.tmp"
    save_file(state, tmp, metadata={"format": "pt"})
    os.replace(tmp, folder / WEIGHTS)
    atomic_write_text(folder / CONFIG, text)
    return folder


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    if cfg["kind"] not in MODELS:
        raise CheckpointError(f"{path}: unknown model kind {cfg['kind']!r}; known: {', '.join(sorted(MODELS))}")
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


def load_model(
    folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, Vocab, dict]:
    """Load a model folder -> (model in eval mode on `device` in `dtype`, its Vocab, the config.json dict).

    Raises CheckpointError naming the folder and the problem for a missing folder or file, a malformed
    config, an invalid vocabulary, or weights that do not fit the configured model."""
    folder = Path(folder)
    cfg = read_config(folder)
    vocab = read_vocab(folder, cfg)
    try:
        model = build_model(cfg["kind"], cfg["model"])
    except (ValueError, TypeError, RuntimeError, ArithmeticError) as e:  # torch: negative sizes; n_head=0
        raise CheckpointError(f"model folder {folder}: {e}") from None
    vocab_size = getattr(model.config, "vocab_size", None)
    if vocab_size is not None and vocab_size < len(vocab):
        raise CheckpointError(f"model folder {folder}: model vocab_size {vocab_size} < vocabulary size {len(vocab)}")

    path = folder / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"model folder {folder} has no {WEIGHTS}")
    try:
        weights = load_file(path, device="cpu")  # safetensors: plain tensors, never pickle
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None

    expected = _distinct_state(model)
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the {cfg['kind']} config: missing {missing[:5]}{'...' * (len(missing) > 5)}, "
            f"unexpected {unexpected[:5]}{'...' * (len(unexpected) > 5)}"
        )
    bad = [
        f"{k} {tuple(weights[k].shape)} != {tuple(t.shape)}" for k, t in expected.items() if weights[k].shape != t.shape
    ]
    if bad:
        raise CheckpointError(f"{path} has tensors of the wrong shape for its config: {'; '.join(bad[:5])}")
    model.load_state_dict(weights, strict=False)  # strict=False only for tied aliases, checked above
    return model.to(device=device, dtype=dtype).eval(), vocab, cfg


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


PREFERRED_MODELS = ("piano", "gpt", "sparse", "lstm")  # offered in this order; the default is the first installed


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
