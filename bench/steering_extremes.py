"""Does steering at its extremes keep the music musical? (issue 21, defect 6)

Usage: .venv/bin/python -m bench.steering_extremes [--seeds 2] [--variations 3] [--tokens 512] [--model piano]
                                                  [--composer bach] [--no-guards]

Each of the playground's steering controls (maia/controls.py) at the ends of its range, against unsteered
output: density 0.25 and 4, a high register (60..84, two octaves from middle C) and a low one (21..45), and a
key lock at full strength (C major). For each setting, --seeds seeds x --variations variations of --tokens new
tokens from no prompt (the page's default: a composer and nothing else), top-k 5, the same seeds for every
setting, with the collapse guards as shipped (SamplingConfig's max_hold_beats and max_loop_beats); --no-guards
adds the same runs with the guards off. Of maia's notes it prints the medians over the pieces of:

- seconds of music, notes, and notes per 10 s (fewer notes strike fewer pitches: density 0.25 asks for fewer);
- distinct pitches struck per 10 s (maia.listener.distinct_pitches_per_window);
- the longest stretch of onsets on at most two pitches, in seconds (maia.listener.longest_two_pitch_run), its
  median and its worst over the pieces;
- the largest share of the notes on one pitch (worst piece).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.appserver import pick_model
from maia.checkpoint import load_model

SETTINGS = {  # label -> Controls keyword arguments
    "unsteered": {},
    "density 0.25": dict(density=0.25),
    "density 4": dict(density=4.0),
    "register 60..84": dict(lowest=60, highest=84),
    "register 21..45": dict(lowest=21, highest=45),
    "key C major, strength 1": dict(key=(0, "major"), key_strength=1.0),
}


def measure(model, vocab, prompt, steer: dict, seeds: int, variations: int, tokens: int, guards: bool) -> list[dict]:
    """One row per piece: its seconds, notes, distinct pitches per 10 s, longest two-pitch run, top pitch share."""
    from maia.controls import Controls
    from maia.generate import SamplingConfig, generate_ids, ids_to_piece
    from maia.listener import distinct_pitches_per_window, longest_two_pitch_run

    controls = Controls(**steer).validate() if steer else None
    off = {} if guards else dict(max_hold_beats=None, max_loop_beats=None)
    rows = []
    for seed in range(1, seeds + 1):
        config = SamplingConfig(max_new_tokens=tokens, seed=seed, variations=variations, **off)
        for ids in generate_ids(model, prompt.ids, config, vocab, controls):
            piece = ids_to_piece(ids, vocab, prompt)
            pitches = piece.notes[:, 2] if len(piece) else np.zeros(0, int)
            top = np.bincount(pitches).max() / len(pitches) if len(pitches) else float("nan")
            rows.append({"seconds": piece.duration_seconds, "notes": len(piece),
                         "rate": 10 * len(piece) / max(piece.duration_seconds, 1e-9),
                         "distinct": distinct_pitches_per_window(piece), "run": longest_two_pitch_run(piece),
                         "top_share": top})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--variations", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--model", help="an installed model (default: the shipped default)")
    ap.add_argument("--composer", default="bach")
    ap.add_argument("--model-dir", help="a models folder (default: the shipped assets/models)")
    ap.add_argument("--no-guards", action="store_true", help="also run each setting with the guards off")
    a = ap.parse_args(argv)

    from maia.generate import build_prompt

    root, name = pick_model(a.model_dir)
    name = a.model or name
    model, vocab, _ = load_model(root / name)
    prompt = build_prompt(vocab, a.composer, None)
    n = a.seeds * a.variations
    print(f"# model {name}, composer {a.composer}, no prompt; {a.seeds} seeds x {a.variations} variations x "
          f"{a.tokens} tokens per setting; top-k 5; medians over the {n} pieces (worst: the worst piece)")
    print(f"{'setting':<25} {'guards':>6} {'seconds':>7} {'notes':>5} {'notes/10s':>9} {'pitches/10s':>11} "
          f"{'2-pitch run s':>13} "
          f"{'worst':>6} {'top pitch share':>15}")
    for label, steer in SETTINGS.items():
        for guards in (True, False) if a.no_guards else (True,):
            rows = measure(model, vocab, prompt, steer, a.seeds, a.variations, a.tokens, guards)
            med = {k: float(np.nanmedian([r[k] for r in rows])) for k in rows[0]}
            worst_run = max(r["run"] for r in rows)
            worst_share = float(np.nanmax([r["top_share"] for r in rows]))
            print(f"{label:<25} {'on' if guards else 'off':>6} {med['seconds']:>7.1f} {med['notes']:>5.0f} "
                  f"{med['rate']:>9.0f} {med['distinct']:>11.1f} {med['run']:>13.1f} {worst_run:>6.1f} "
                  f"{worst_share:>15.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
