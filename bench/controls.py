"""What the playground's steering does (maia/controls.py), measured on the shipped model.

Usage: .venv/bin/python -m bench.controls [--seeds 6] [--tokens 512] [--model-dir DIR] [--json OUT]

For each setting, --seeds continuations of --tokens new tokens from the Lacrimosa prompt (composer mozart) and
from no prompt (composer unknown), top-k 5, the same seeds for every setting. Of maia's new notes it reports:
- key lock (D minor, the Lacrimosa's key) at strengths 0, 0.5, 0.9 and 1: the share of notes in the scale;
- density factors 0.5, 1 and 2: the notes per second reached, and their ratio to the unsteered ones;
- register 48..84: the share of notes inside it;
- the cost of each: the bits per note of the steered music under the plain model (what it would have paid to
  write it unsteered), against the unsteered music's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench.appserver import ROOT, pick_model
from maia.checkpoint import load_model

LACRIMOSA = ROOT / "assets" / "prompts" / "lacrimosa.mid"
D_MINOR = (2, "minor")
SETTINGS = {  # label -> Controls keyword arguments
    "unsteered": {},
    "key D minor, strength 0.5": dict(key=D_MINOR, key_strength=0.5),
    "key D minor, strength 0.9": dict(key=D_MINOR, key_strength=0.9),
    "key D minor, strength 1": dict(key=D_MINOR, key_strength=1.0),
    "density 0.5": dict(density=0.5),
    "density 2": dict(density=2.0),
    "register 48..84": dict(lowest=48, highest=84),
}


def run(model, vocab, prompt, steer: dict, seeds: int, tokens: int) -> list[dict]:
    from maia.controls import Controls, in_scale_share
    from maia.generate import SamplingConfig, generate_ids, ids_to_piece
    from maia.scoring import sliding_window_bits

    controls = Controls(**steer).validate() if steer else None
    out = []
    for seed in range(1, seeds + 1):
        full = generate_ids(model, prompt.ids, SamplingConfig(max_new_tokens=tokens, seed=seed), vocab, controls)[0]
        piece = ids_to_piece(full, vocab, prompt)
        new = piece.notes[piece.notes[:, 0] >= prompt.steps]
        seconds = (piece.end_step - prompt.steps) * piece.seconds_per_step
        bits = sliding_window_bits(model, [np.asarray(full, np.int64)], window=model.max_context)
        new_bits = float(bits[len(prompt.ids) - 1:].sum())  # the bits of the new tokens
        out.append({"notes": len(new), "seconds": seconds, "bits": new_bits,
                    "in_scale": in_scale_share(new, D_MINOR) if len(new) else float("nan"),
                    "in_register": float(np.mean((new[:, 2] >= 48) & (new[:, 2] <= 84))) if len(new) else float("nan")})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--model-dir", help="a models folder (default: the shipped assets/models)")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args(argv)

    import torch

    from maia.encoding import read
    from maia.generate import build_prompt

    torch.set_num_threads(max(1, torch.get_num_threads()))
    root, name = pick_model(a.model_dir)
    model, vocab, _ = load_model(root / name)
    prompts = {"Lacrimosa prompt": build_prompt(vocab, "mozart", read(LACRIMOSA, vocab.config)),
               "no prompt": build_prompt(vocab, "unknown", None)}
    print(f"# model {name}; {a.seeds} seeds x {a.tokens} new tokens per setting; top-k 5; maia's new notes only")
    print(f"{'prompt':<17} {'setting':<27} {'notes':>6} {'notes/s':>8} {'vs plain':>8} {'in D minor':>10} "
          f"{'in 48..84':>9} {'bits/note':>9}")
    results = {}
    for label, prompt in prompts.items():
        base = None
        for setting, steer in SETTINGS.items():
            rows = run(model, vocab, prompt, steer, a.seeds, a.tokens)
            notes = sum(r["notes"] for r in rows)
            rate = notes / max(1e-9, sum(r["seconds"] for r in rows))
            base = rate if setting == "unsteered" else base
            scale = float(np.nanmean([r["in_scale"] for r in rows]))
            register = float(np.nanmean([r["in_register"] for r in rows]))
            bits = sum(r["bits"] for r in rows) / max(1, notes)
            results[f"{label} / {setting}"] = {"notes": notes, "notes_per_s": rate, "density_ratio": rate / base,
                                               "in_scale": scale, "in_register": register, "bits_per_note": bits}
            print(f"{label:<17} {setting:<27} {notes:>6} {rate:>8.2f} {rate / base:>8.2f} {scale:>10.3f} "
                  f"{register:>9.3f} {bits:>9.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
