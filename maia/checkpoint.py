"""Save and load a model folder: `model.safetensors` (weights) + `config.json` (everything else).

config.json describes the checkpoint completely, so loading is `Model(Config(**cfg["model"]))` followed
by the weights; nothing is ever unpickled:

    {"format": "maia-model/1", "kind": "gpt", "model": {...GPTConfig...}, "vocab": {...Vocab.to_dict()...},
     ...extra: training settings, data summary, metrics}

Reading config.json and finding the installed models need no torch: they live in maia.registry, and are
re-exported here for the callers that load weights too.
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

from maia.models import MODELS, build_model
from maia.registry import (  # the torch-free half, re-exported: reading configs and finding installed models
    CONFIG,
    DEFAULT_ROOT,
    FORMAT,
    PREFERRED_MODELS,
    REQUIRED_KEYS,
    WEIGHTS,
    CheckpointError,
    default_model,
    installed_models,
    list_models,
    models_root,
    read_config,
    read_vocab,
    resolve_model,
)
from maia.vocab import Vocab


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


__all__ = ["CONFIG", "DEFAULT_ROOT", "FORMAT", "PREFERRED_MODELS", "REQUIRED_KEYS", "WEIGHTS", "CheckpointError",
           "atomic_write_text", "default_model", "installed_models", "list_models", "load_model", "models_root",
           "read_config", "read_vocab", "resolve_model", "save_model"]
