"""Does the model stay in the Lacrimosa's key? Continue Mozart's eight bars with N seeds, name each key.

Usage:
    python -m training.lacrimosa --model assets/models/piano [--seeds 10] [--tokens 512] [--top-k 5]
    python -m training.lacrimosa --model assets/models/piano --complete 22 [--form ABA] [--seeds 10]
    python -m training.lacrimosa --model assets/models/piano --page [--seeds 10]

With ``--page`` each seed goes through the page's own request (maia.playground.stream with the button's
settings: 22 bars, ending, ABA, the page's sampling defaults) and the MIDI file it writes is read back: what a
user clicking *Complete the Lacrimosa* gets. The model must be an installed one (its folder's name is used).

With ``--complete BARS`` each seed composes the whole piece instead (maia/form.py, as the app's Lacrimosa
button does): the eight bars, then BARS more ending with a cadence in D minor, the opening theme coming
back before it as ``--form`` asks; the table adds whether the final chord stands on D.

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


def lacrimosa_prompt(vocab):
    """(the eight bars as a Piece, the composer token's name or None, their Prompt, their key)."""
    piece = read(PROMPT, vocab.config)
    composer = "mozart" if vocab.find_composer("mozart") else None
    return piece, composer, build_prompt(vocab, composer, piece), metrics.estimate_key(piece)


def lacrimosa_keys(model, vocab, seeds: int = 10, tokens: int = 512, top_k: int = 5) -> dict:
    piece, composer, prompt, prompt_key = lacrimosa_prompt(vocab)
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


def lacrimosa_complete(model, vocab, seeds: int = 10, bars: int = 22, form_name: str | None = "ABA",
                       config: SamplingConfig | None = None, key_strength: float = 0.0, key_candidates: int = 1,
                       homecoming: float = 0.0) -> dict:
    """Whole Lacrimosas: per seed, the continuation's key, whether it is D minor or F major, and whether the
    final chord's lowest note is D. ``key_strength`` > 0 holds the notes to the prompt's key as the page's
    key lock does (0.5: a note outside the scale is half as likely); ``key_candidates`` and ``homecoming`` as
    maia.compose.compose takes them (key_candidates, home: the first of N candidates in key; the homecoming's
    strength)."""
    from maia import form
    from maia.compose import compose
    from maia.controls import Controls

    piece, composer, prompt, prompt_key = lacrimosa_prompt(vocab)
    rows = []
    for seed in range(seeds):
        cfg = replace(config or SamplingConfig(), seed=seed, variations=1)
        lock = Controls(key=prompt_key[:2], key_strength=key_strength) if key_strength > 0 else None
        ((full, ending),) = compose(model, vocab, prompt, cfg, bars=bars, end=True, controls=lock,
                                         prompt_piece=piece, form=form_name, key_candidates=key_candidates,
                                         home=homecoming)
        cont = full.notes[full.notes[:, 0] >= prompt.steps]
        key = metrics.estimate_key(cont)
        home = metrics.same_key_or_relative(prompt_key, key)
        on_d = form.ends_on_tonic(full, (prompt_key[0], prompt_key[1]))
        rows.append({"seed": seed, "notes": len(cont), "key": metrics.key_name(key), "key_r": round(key[2], 3),
                     "home": home, "ends_on_tonic": on_d, "seconds": round(full.duration_seconds, 1),
                     "ending_bits_per_note": round(ending.bits_per_note, 3)})
    return {"prompt_key": metrics.key_name(prompt_key), "composer": composer or "unknown", "bars": bars,
            "form": form_name, "key_strength": key_strength, "key_candidates": key_candidates, "homecoming": homecoming,
            "seeds": seeds, "home": sum(r["home"] for r in rows),
            "ends_on_tonic": sum(r["ends_on_tonic"] for r in rows),
            "both": sum(r["home"] and r["ends_on_tonic"] for r in rows), "rows": rows}


def lacrimosa_page(name: str, vocab, seeds: int = 10) -> dict:
    """The page's *Complete the Lacrimosa* button, per seed: playground.stream as app.py calls it (the
    button's prompt, composer, length, ending and form; the page's default sampling), the finished MIDI file
    read back, its continuation's key and final chord. The status line says when a key candidate other than
    the first was kept."""
    from maia import form, playground

    _, _, prompt, prompt_key = lacrimosa_prompt(vocab)
    rows = []
    for seed in range(seeds):
        *_, update = playground.stream(str(playground.LACRIMOSA), "mozart", name, 512, SamplingConfig.top_k, 1.0,
                                        seed, 1, bars=playground.LACRIMOSA_BARS, end=True, form="ABA", audio=False,
                                        budget=3600.0, interval=60.0, key_candidates=playground.KEY_CANDIDATES)
        full = read(update.outputs[0].midi, vocab.config)
        cont = full.notes[full.notes[:, 0] >= prompt.steps]
        key = metrics.estimate_key(cont)
        rows.append({"seed": seed, "notes": len(cont), "key": metrics.key_name(key), "key_r": round(key[2], 3),
                     "home": metrics.same_key_or_relative(prompt_key, key),
                     "ends_on_tonic": form.ends_on_tonic(full, (prompt_key[0], prompt_key[1])),
                     "seconds": round(full.duration_seconds, 1), "ending_bits_per_note": float("nan"),
                     "status": update.status})
    return {"prompt_key": metrics.key_name(prompt_key), "composer": "mozart", "bars": playground.LACRIMOSA_BARS,
            "form": "ABA (the page)", "key_candidates": playground.KEY_CANDIDATES, "seeds": seeds,
            "home": sum(r["home"] for r in rows), "ends_on_tonic": sum(r["ends_on_tonic"] for r in rows),
            "both": sum(r["home"] and r["ends_on_tonic"] for r in rows), "rows": rows}


def report_complete(r: dict) -> str:
    lines = [f"Lacrimosa completed (prompt in {r['prompt_key']}): {r['bars']} bars more, form {r['form'] or 'none'}, "
             f"key lock {r.get('key_strength', 0.0):g}, homecoming {r.get('homecoming', 0.0):g}, the first in key "
             f"of {r.get('key_candidates', 1)}, ending in the home key: {r['home']} of {r['seeds']} in D minor "
             f"or F major, {r['ends_on_tonic']} end on a {r['prompt_key'].split()[0]} bass, {r['both']} both", "",
             "| seed | notes | seconds | key of the continuation | D minor or F major | ends on the tonic | "
             "ending bits/note |", "|---:|---:|---:|---|---|---|---:|"]
    for x in r["rows"]:
        lines.append(f"| {x['seed']} | {x['notes']} | {x['seconds']} | {x['key']} | {'yes' if x['home'] else 'no'} | "
                     f"{'yes' if x['ends_on_tonic'] else 'no'} | {x['ending_bits_per_note']:.2f} |".replace("nan", "–"))
    return "\n".join(lines)


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
    ap.add_argument("--top-k", type=int, default=SamplingConfig.top_k)
    ap.add_argument("--complete", type=int, metavar="BARS", help="compose BARS more bars, ending in D minor")
    ap.add_argument("--form", default="ABA", help="with --complete: ABA, AABA, rondo, or none")
    ap.add_argument("--key-strength", type=float, default=0.0, help="with --complete: hold the notes to D minor "
                    "(0..1, as the page's key lock; 0: off)")
    ap.add_argument("--key-candidates", type=int, default=1, help="with --complete: sample N candidates, keep the "
                    "first in D minor or F major (maia.compose.compose's key_candidates)")
    ap.add_argument("--home", type=float, default=0.0, help="with --complete: the homecoming's strength (0: off)")
    ap.add_argument("--page", action="store_true", help="complete it as the page's button does (maia.playground), "
                    "reading back the MIDI file it writes")
    ap.add_argument("--no-write", action="store_true", help="print only; leave MODEL/eval.json as it is")
    a = ap.parse_args(argv)
    model, vocab, _ = load_model(a.model)
    if a.page:
        r = lacrimosa_page(Path(a.model).name, vocab, a.seeds)
        print(report_complete(r))
        for x in r["rows"]:
            print(f"seed {x['seed']}: {x['status']}")
        entry = "lacrimosa_page"
    elif a.complete:
        r = lacrimosa_complete(model, vocab, a.seeds, a.complete, None if a.form == "none" else a.form,
                               SamplingConfig(top_k=a.top_k), a.key_strength, a.key_candidates, a.home)
        print(report_complete(r))
        entry = "lacrimosa_complete"
    else:
        r = lacrimosa_keys(model, vocab, a.seeds, a.tokens, a.top_k)
        print(report(r))
        entry = "lacrimosa"
    if a.no_write:
        return 0
    path = Path(a.model) / "eval.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[entry] = r
    path.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
