"""Does the model stay in the Lacrimosa's key? Continue Mozart's eight bars with N seeds, name each key.

Usage:
    python -m training.lacrimosa --model assets/models/piano [--seeds 10] [--tokens 512] [--top-k 5]

Steps:
  1. the prompt is assets/prompts/lacrimosa.mid (D minor), with the model's composer token for mozart
     (unknown if it has none), exactly as the app's Lacrimosa button builds it;
  2. sample a continuation of ``tokens`` tokens for each seed 0..N-1 with maia.generate;
  3. estimate the key of each continuation alone (the notes after the prompt) with the Krumhansl-Schmuckler
     method (maia.metrics.estimate_key), and the pitch-class correlation of continuation and prompt;
  4. print the table and merge it into MODEL/eval.json as "lacrimosa".
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from maia import metrics
from maia.checkpoint import load_model
from maia.encoding import read
from maia.generate import SamplingConfig, build_prompt, generate_ids, ids_to_piece

PROMPT = Path(__file__).resolve().parents[1] / "assets" / "prompts" / "lacrimosa.mid"


def lacrimosa_keys(model, vocab, seeds: int = 10, tokens: int = 512, top_k: int = 5) -> dict:
    piece = read(PROMPT, vocab.config)
    composer = "mozart" if vocab.find_composer("mozart") else None
    prompt = build_prompt(vocab, composer, piece)
    prompt_key = metrics.estimate_key(piece)
    rows = []
    for seed in range(seeds):
        (ids,) = generate_ids(model, prompt.ids, SamplingConfig(max_new_tokens=tokens, top_k=top_k, seed=seed), vocab)
        full = ids_to_piece(ids, vocab, prompt)
        cont = full.notes[full.notes[:, 0] >= prompt.steps]
        key = metrics.estimate_key(cont)
        corr = metrics.pitch_class_correlation(piece, replace(full, notes=cont)) if len(cont) else float("nan")
        rows.append({"seed": seed, "notes": len(cont), "key": metrics.key_name(key), "key_r": round(key[2], 3),
                     "home": metrics.same_key_or_relative(prompt_key, key), "pc_correlation": round(corr, 3)})
    home = sum(r["home"] for r in rows)
    return {"prompt_key": metrics.key_name(prompt_key), "composer": composer or "unknown", "tokens": tokens,
            "top_k": top_k, "seeds": seeds, "home": home, "rows": rows,
            "mean_pc_correlation": float(np.nanmean([r["pc_correlation"] for r in rows]))}


def report(r: dict) -> str:
    lines = [f"Lacrimosa (prompt in {r['prompt_key']}), composer {r['composer']}, {r['tokens']} new tokens, top-k "
             f"{r['top_k']}: {r['home']} of {r['seeds']} continuations in D minor or F major; mean pitch-class "
             f"correlation with the prompt {r['mean_pc_correlation']:.2f}", "",
             "| seed | notes | key of the continuation | fit (r) | D minor or F major | pitch-class r with prompt |",
             "|---:|---:|---|---:|---|---:|"]
    for x in r["rows"]:
        lines.append(f"| {x['seed']} | {x['notes']} | {x['key']} | {x['key_r']:.2f} | {'yes' if x['home'] else 'no'} | "
                     f"{x['pc_correlation']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--top-k", type=int, default=5)
    a = ap.parse_args(argv)
    model, vocab, _ = load_model(a.model)
    r = lacrimosa_keys(model, vocab, a.seeds, a.tokens, a.top_k)
    print(report(r))
    path = Path(a.model) / "eval.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["lacrimosa"] = r
    path.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
