"""The model zoo: one file per model, each a `@dataclass XConfig` and an `nn.Module` built from it.

Every model implements the same interface (documented in gpt.py), which is all maia.generate and
training/train.py rely on: forward, init_cache, step, max_context, num_params, configure_optimizers.
"""

from __future__ import annotations

import dataclasses

import torch.nn as nn

from maia.models.gpt import GPT, GPTConfig
from maia.models.lstm import LSTMConfig, LSTMModel
from maia.models.sparse_gpt import SparseGPT, SparseGPTConfig

# ---- MODEL REGISTRY: kind -> (Config, Model). To add a model, import it above and add one line. ------
MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    "gpt": (GPTConfig, GPT),
    "lstm": (LSTMConfig, LSTMModel),
    "sparse_gpt": (SparseGPTConfig, SparseGPT),
}
# ---- end of registry ---------------------------------------------------------------------------------


def build_model(kind: str, cfg: dict) -> nn.Module:
    """`Model(Config(**cfg))` for a registered kind; ValueError on an unknown kind or bad config keys."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(MODELS))}")
    config_cls, model_cls = MODELS[kind]
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(cfg) - set(fields))
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in cfg and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    problems = []
    if unknown:
        problems.append(f"unknown keys {unknown} (valid: {', '.join(fields)})")
    if missing:
        problems.append(f"missing keys {missing}")
    if problems:
        raise ValueError(f"bad {config_cls.__name__} for kind {kind!r}: {'; '.join(problems)}")
    return model_cls(config_cls(**cfg))


__all__ = ["GPT", "MODELS", "GPTConfig", "LSTMConfig", "LSTMModel", "SparseGPT", "SparseGPTConfig", "build_model"]
