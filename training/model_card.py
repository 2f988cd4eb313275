"""Write a shipped model's card (assets/models/NAME/README.md) from its config.json and eval.json.

Usage:
    python -m training.model_card --model assets/models/piano --notes training/cards/piano.md

The card opens with Hugging Face front matter: the weights' license (CC BY-NC-SA 4.0, that of their data)
and the datasets they learnt from. Every figure in the card is read from the model folder: the training
settings and compute from config.json (written by training.train), the held-out figures from eval.json
(written by training.evaluate, training.lacrimosa and training.compare), so no number is typed by hand.
``--notes`` adds the prose: what the model is for and its known limits.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# What each corpus source is and under which terms it may be used (docs/data.md lists the repositories).
SOURCES = {
    "asap": ("ASAP (fosfrancesco/asap-dataset @ afc815c): quantised score MIDI of 236 works", "CC BY-NC-SA 4.0"),
    "asap-performances": ("ASAP performances (MAESTRO recordings)", "CC BY-NC-SA 4.0"),
    "kern-beethoven": ("Beethoven piano sonatas, Humdrum kern (craigsapp/beethoven-piano-sonatas @ 2d6627b)",
                       "not stated in the repository (kernScores: for research)"),
    "kern-mozart": ("Mozart piano sonatas, Humdrum kern (craigsapp/mozart-piano-sonatas @ 0f1f49d)", "CC BY-NC-SA 4.0"),
    "kern-chopin": ("Chopin's works, Humdrum kern (craigsapp/chopin-humdrum-nifc @ ffa67d0)",
                    "not stated in the repository"),
    "pop909": ("POP909 (music-x-lab/POP909-Dataset @ d83e6ed): 909 pop piano arrangements", "MIT"),
    "music21": ("the corpus that ships inside music21 (the warm start's data)", "BSD-3 (music21) / public domain scores"),
}
# Where each source lives, for the card's `datasets:` front matter. They are GitHub repositories, not Hub
# datasets; the owner/name form is the one the Hub's field takes.
DATASETS = {"asap": "fosfrancesco/asap-dataset", "asap-performances": "fosfrancesco/asap-dataset",
            "kern-beethoven": "craigsapp/beethoven-piano-sonatas", "kern-mozart": "craigsapp/mozart-piano-sonatas",
            "kern-chopin": "craigsapp/chopin-humdrum-nifc", "pop909": "music-x-lab/POP909-Dataset",
            "music21": "cuthbertLab/music21"}
LICENSE = "cc-by-nc-sa-4.0"  # the weights take the most restrictive terms of their data (ASAP, the Mozart kern scores)


def front_matter(sources: list[str]) -> list[str]:
    """The Hugging Face model card metadata: the weights' license and the datasets they learnt from."""
    datasets = list(dict.fromkeys(DATASETS[s] for s in sources if s in DATASETS))
    return ["---", f"license: {LICENSE}", *(["datasets:", *(f"- {d}" for d in datasets)] if datasets else []),
            "tags:", "- music", "- symbolic-music", "- midi", "- piano", "---", ""]


def card(folder: Path, notes: str = "") -> str:
    cfg = json.loads((folder / "config.json").read_text())
    ev = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").exists() else {}
    tr, model, vocab = cfg.get("training", {}), cfg["model"], cfg["vocab"]
    tcfg = tr.get("config", {})
    data, train = tcfg.get("data", {}), tcfg.get("train", {})
    index_sources = (cfg.get("data", {}).get("sources")
                     or sorted({e.get("source") or "music21" for e in _index(data.get("data_dir"))})
                     or ["(corpus not found here)"])
    lines = [*front_matter(index_sources), f"# maia `{folder.name}` — {cfg['kind']}", ""]
    if notes:
        lines += [notes.strip(), ""]
    lines += ["## Model", "",
              f"- kind `{cfg['kind']}`: " + ", ".join(f"{k} {v}" for k, v in model.items()),
              f"- vocabulary: {vocab['size']} tokens; composers: {', '.join(vocab['composers'])}"
              + ("; fill-in-the-middle markers" if vocab.get("fim") else "")
              + (f"; {len(vocab.get('merges', []))} n-gram merges" if vocab.get("merges") else ""),
              "- weights: fp16 safetensors (`model.safetensors`), loaded by `maia.checkpoint.load_model`", "",
              "## Training data and licenses", "",
              f"Corpus `{data.get('data_dir')}`, prepared by `python -m training.prepare` (docs/data.md):", ""]
    for s in index_sources:
        desc, lic = SOURCES.get(s, (s, "see its source"))
        lines.append(f"- {desc} — license: {lic}")
    if train.get("init"):
        lines.append(f"- warm start: the weights then at `{train['init']}` (docs/models.md keeps the lineage, which began "
                     f"with a model of the corpus that ships inside music21, license {SOURCES['music21'][1]})")
    lines += ["", "The weights follow the most restrictive terms of their data: **CC BY-NC-SA 4.0** "
              "(non-commercial, share alike, attribution to the sources above).", "",
              "## Compute", "",
              f"- {tr.get('step')} steps, {tr.get('tokens', 0):,} training tokens, {tr.get('seconds', 0) / 3600:.2f} hours "
              f"on {tr.get('device')} (x{tr.get('world_size', 1)}), torch {tr.get('torch')}",
              f"- windows of {data.get('seq_len')} tokens, batch {train.get('batch_size')}, lr {train.get('lr')} → "
              f"{train.get('min_lr')}, weight decay {train.get('weight_decay')}, dtype {train.get('dtype', 'auto')}"
              f"{', torch.compile' if train.get('compile') else ''}",
              f"- data recipe: {data.get('unknown_composer', 0):.0%} of windows as `<composer:unknown>`, "
              f"{data.get('fim_rate', 0):.0%} rearranged for fill-in-the-middle, composer weights "
              f"{data.get('composer_weights') or 'none'}, transposed into 12 keys", ""]
    if ev.get("bits_per_note") is not None:
        lines += ["## Held-out figures", "",
                  f"`python -m training.evaluate --model assets/models/{folder.name}` on the {ev.get('pieces')} held-out "
                  f"pieces of `{ev.get('data_dir')}` ({ev.get('notes', 0):,} notes; no copy of a held-out work is in "
                  "training):", "",
                  "| model | bits/note | bits/token |", "|---|---:|---:|",
                  f"| this model | {ev['bits_per_note']:.3f} | {ev['bits_per_token']:.3f} |",
                  f"| {ev.get('ngram_order')}-gram Kneser-Ney, same data | {ev['ngram_bits_per_note']:.3f} | "
                  f"{ev['ngram_bits_per_token']:.3f} |", ""]
        if ev.get("by_kind"):
            lines += ["Bits per note by token kind: " + ", ".join(f"{k} {v:.2f}" for k, v in ev["by_kind"].items()), ""]
    if ev.get("lacrimosa"):
        la = ev["lacrimosa"]
        lines += [f"Lacrimosa (`python -m training.lacrimosa --model assets/models/{folder.name}`): {la['home']} of "
                  f"{la['seeds']} continuations ({la['tokens']} tokens, top-k {la['top_k']}) in D minor or F major; "
                  f"keys: {', '.join(r['key'] for r in la['rows'])}.", ""]
    if ev.get("long_context"):
        lc = ev["long_context"]
        lines += [f"Long context (`--long-context`), {lc['pieces']} held-out pieces of at least {lc['min_tokens']} "
                  "tokens: " + ", ".join(f"{w} tokens {b:.3f} bits/note" for w, b in lc["bits_per_note"].items()), ""]
    return "\n".join(lines) + "\n"


def _index(data_dir) -> list[dict]:
    try:
        return json.loads((Path(data_dir) / "index.json").read_text())
    except (OSError, TypeError, ValueError):
        return []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--notes", type=Path, help="markdown: what the model is for, known limits")
    a = ap.parse_args(argv)
    text = card(a.model, a.notes.read_text() if a.notes else "")
    (a.model / "README.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
