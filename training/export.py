"""Copy a trained run into the shipped models: fp16 safetensors, config.json, loss curve, eval.json.

Usage:
    python -m training.export --run runs/gpt --name gpt        # -> assets/models/gpt/

The run folder keeps fp32 weights and the optimiser state for resuming; the shipped folder holds only
what loading and reading need, in fp16 (each model is well under 25 MB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch

from maia.checkpoint import DEFAULT_ROOT, load_model, save_model

SHIPPED_FILES = ("loss.png", "log.csv", "eval.json")


def export(run: Path, dest: Path) -> Path:
    """Writes ``dest`` from ``run``; returns it."""
    model, vocab, cfg = load_model(run)
    extra = {k: v for k, v in cfg.items() if k not in ("format", "kind", "model", "vocab")}
    config = model.config
    if getattr(config, "attn_impl", "auto") != "auto":
        # A kernel is a property of the machine, not of the model: a sparse GPT trained with flex on CUDA
        # would otherwise run flex's unfused O(n^2) fallback on a user's CPU. "auto" picks per device.
        config = replace(config, attn_impl="auto")
    dest.mkdir(parents=True, exist_ok=True)
    save_model(dest, model, cfg["kind"], config, vocab, extra, dtype=torch.float16)
    for name in SHIPPED_FILES:
        if (run / name).exists():
            shutil.copy2(run / name, dest / name)
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, help="a training run folder (training.train --out)")
    ap.add_argument("--name", required=True, help="folder name under assets/models/")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    a = ap.parse_args(argv)
    dest = export(a.run, a.root / a.name)
    size = (dest / "model.safetensors").stat().st_size / 2**20
    metrics = json.loads((dest / "config.json").read_text()).get("metrics", {})
    print(f"exported {a.run} -> {dest} ({size:.1f} MiB fp16); metrics: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
