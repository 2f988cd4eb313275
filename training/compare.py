"""Short comparison runs at equal wall-clock: tokens, fill-in-the-middle, data choices, each scored on
held-out works and on one composer no run trained on.

Usage:
    python -m training.compare --plan training/configs/compare_piano.toml [--only NAME,NAME] [--eval-only]

A plan (TOML) names a base config, the minutes each run gets, overrides common to all runs and a list of
``[[variant]]`` with their own overrides. Steps:
  1. train each variant as its own ``python -m training.train`` process into OUT/NAME (skipped when
     OUT/NAME/config.json says it already finished, so a plan can be resumed);
  2. score each on the held-out split of its corpus (bits per note, by token kind), on every piece of the
     plan's ``holdout_composer`` with ``<composer:unknown>`` (leave-one-composer-out: no run saw any of
     them), and, for fill-in-the-middle runs, on middle spans of held-out pieces;
  3. write OUT/compare.json and OUT/compare.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

from maia.checkpoint import load_model
from maia.scoring import bits_by_kind, model_window, remap_ids, sliding_window_bits, token_kinds
from training.data import Corpus, fim_cut_points, step_boundary_tables

LN2 = math.log(2)


def held_out_bits(model, vocab, corpus: Corpus, split: str, only=(), composer=None, window=None,
                  exclude=()) -> dict:
    """Bits per note (and per token kind) of the corpus pieces in ``split`` (or 'all'), remapped to the
    model's vocabulary; ``composer`` replaces every piece's composer token (e.g. 'unknown')."""
    entries = corpus.entries(split, exclude, only)
    pieces = [remap_ids(p, corpus.vocab, vocab, composer) for p in corpus.pieces(split, 0, exclude, only)]
    if not pieces:
        return {}
    notes = sum(e["notes"] for e in entries)
    bits = sliding_window_bits(model, pieces, window, max(1, window // 2), 8, "cpu", vocab.pad_id)
    targets = np.concatenate([p[1:] for p in pieces])
    return {"pieces": len(pieces), "notes": notes, "tokens": len(bits), "bits_per_note": float(bits.sum() / notes),
            "bits_per_token": float(bits.mean()), "by_kind": bits_by_kind(bits, targets, vocab, notes)}


@torch.inference_mode()
def middle_bits(model, vocab, corpus: Corpus, window: int, n: int = 100, seed: int = 0) -> dict:
    """Bits per note of fill-in-the-middle spans: ``n`` held-out windows cut at two random step
    boundaries, laid out as in training; only the middle (and its <fim:end>) is scored."""
    rng = np.random.default_rng(seed)
    after, before = step_boundary_tables(vocab)
    pieces = [remap_ids(p, corpus.vocab, vocab) for p in corpus.pieces("valid")]
    pieces = [p for p in pieces if len(p) > 64]
    total, notes, count = 0.0, 0, 0
    for _ in range(n):
        p = pieces[rng.integers(len(pieces))]
        s = int(rng.integers(0, max(1, len(p) - (window - 4))))
        body = p[1 + s : 1 + s + window - 4]
        cuts = fim_cut_points(body, after, before)
        if len(cuts) < 2:
            continue
        i, j = np.sort(rng.choice(cuts, 2, replace=False))
        x = np.concatenate([p[:1], [vocab.prefix_id], body[:i], [vocab.suffix_id], body[j:], [vocab.middle_id],
                            body[i:j], [vocab.fim_end_id]]).astype(np.int64)
        logits = model(torch.from_numpy(x[None, :-1]))[0].float()
        logp = torch.log_softmax(logits, -1).gather(-1, torch.from_numpy(x[1:, None]))[:, 0].numpy() / -LN2
        m0 = len(x) - (j - i) - 2  # position of <fim:middle> in x; targets from there on are B and <fim:end>
        total += float(logp[m0:].sum())
        notes += int((token_kinds(body[i:j], vocab) == 0).sum())
        count += 1
    return {"spans": count, "notes": notes, "bits_per_note": total / max(notes, 1)}


def ngram_baseline(plan: dict, order: int = 5) -> dict:
    """The 5-gram (training/ngram_lm.py) counted in 12 keys on the plan's corpus without the held-out
    composer, scored on the same held-out works and on the held-out composer (as <composer:unknown>)."""
    from training.ngram_lm import NGramLM

    corpus = Corpus.load(plan["eval_data"])
    hold = plan.get("holdout_composer")
    exclude = (hold,) if hold else ()
    lm = NGramLM(len(corpus.vocab), order, corpus.vocab.pad_id).fit(corpus.pieces("train", 0, exclude), corpus.vocab, True)

    def bpn(split, only=(), composer=None, exclude=()):
        pieces = [remap_ids(p, corpus.vocab, corpus.vocab, composer) for p in corpus.pieces(split, 0, exclude, only)]
        bits, n = lm.total_bits(pieces)
        notes = sum(e["notes"] for e in corpus.entries(split, exclude, only))
        return {"bits_per_note": bits / max(notes, 1), "bits_per_token": bits / max(n, 1), "notes": notes}

    out = {"step": 0, "tokens_seen": 0, "vocab": len(corpus.vocab), "merges": 0,
           "valid": {**bpn("valid", exclude=exclude), "by_kind": {}}}
    if hold:
        out["holdout"] = {"composer": hold, **bpn("all", (hold,), "unknown")}
    return out


def evaluate_run(folder: Path, plan: dict) -> dict:
    model, vocab, cfg = load_model(folder)
    corpus = Corpus.load(plan.get("eval_data") or cfg["data"]["data_dir"])  # one held-out set for every run
    window = model_window(model, cfg)
    hold = plan.get("holdout_composer")
    exclude = (hold,) if hold else ()  # every run scored on the same held-out works, whatever it trained on
    out = {"step": cfg["training"]["step"], "tokens_seen": cfg["training"]["tokens"],
           "minutes": round(cfg["training"]["seconds"] / 60, 1), "vocab": len(vocab), "merges": len(vocab.merges),
           "valid": held_out_bits(model, vocab, corpus, "valid", window=window, exclude=exclude)}
    if plan.get("also_without"):  # e.g. ["pop"]: the held-out works of the other sources alone
        out["valid_without"] = held_out_bits(model, vocab, corpus, "valid", window=window,
                                             exclude=exclude + tuple(plan["also_without"]))
    if hold:
        out["holdout"] = {"composer": hold, **held_out_bits(model, vocab, corpus, "all", (hold,), "unknown", window)}
    if vocab.fim:
        out["middle"] = middle_bits(model, vocab, corpus, window)
    return out


def report(results: dict, plan: dict) -> str:
    hold = plan.get("holdout_composer", "")
    without = plan.get("also_without")
    extra = f" held-out bits/note without {', '.join(without)} |" if without else ""
    lines = [f"| run | merges | steps | training tokens | held-out bits/note |{extra} {hold} bits/note (unknown "
             "composer) | middle-span bits/note | note-on | note-off | wait | dynamics |",
             "|---|---:|---:|---:|---:|" + ("---:|" if without else "") + "---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        k = r["valid"]["by_kind"] or dict.fromkeys(("note-on", "note-off", "wait", "dynamics"), float("nan"))
        cut = f" {r.get('valid_without', {}).get('bits_per_note', float('nan')):.3f} |" if without else ""
        lines.append(f"| {name} | {r['merges']} | {r['step'] or '-'} | {r['tokens_seen'] / 1e6:.2f}M | {r['valid']['bits_per_note']:.3f} |"
                     f"{cut} {r.get('holdout', {}).get('bits_per_note', float('nan')):.3f} | "
                     f"{r['middle']['bits_per_note'] if 'middle' in r else float('nan'):.3f} | {k['note-on']:.3f} | "
                     f"{k['note-off']:.3f} | {k['wait']:.3f} | {k['dynamics']:.3f} |")
    return "\n".join(lines).replace("| nan |", "| - |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", required=True, type=Path)
    ap.add_argument("--only", default="", help="comma-separated variant names")
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--train-only", action="store_true")
    a = ap.parse_args(argv)
    plan = tomllib.loads(a.plan.read_text())
    out = Path(plan.get("out", "runs/compare"))
    only = set(filter(None, a.only.split(",")))
    variants = [v for v in plan["variant"] if not only or v["name"] in only]
    for v in variants:
        folder = out / v["name"]
        done = folder / "config.json"
        if a.eval_only or (done.exists() and json.loads(done.read_text()).get("training", {}).get("finished")):
            continue
        cmd = [sys.executable, "-m", "training.train", "--config", plan["base_config"], *plan.get("common", []),
               f"--train.max_minutes={plan['max_minutes']}", f"--train.out={folder}", *v.get("overrides", [])]
        print(f"== {v['name']}: {' '.join(cmd[3:])}", flush=True)
        t0 = time.time()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "train.log", "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
        print(f"   exit {rc} after {time.time() - t0:.0f} s", flush=True)
    if a.train_only:
        return 0
    results = {}
    summary_path = out / "compare.json"
    if summary_path.exists():
        results = json.loads(summary_path.read_text())
    for v in variants:
        folder = out / v["name"]
        if (folder / "model.safetensors").exists():
            print(f"scoring {v['name']}", flush=True)
            results[v["name"]] = {**evaluate_run(folder, plan), "overrides": v.get("overrides", [])}
    if "5-gram" not in results and plan.get("eval_data"):
        print("counting the 5-gram baseline", flush=True)
        results["5-gram"] = ngram_baseline(plan)
    summary_path.write_text(json.dumps(results, indent=1))
    text = report(results, plan)
    (out / "compare.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
