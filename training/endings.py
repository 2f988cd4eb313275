"""Endings and forms measured: does a continuation of N bars close in its home key, and what does the close
cost? Does the theme come back, at what cost?

Usage:
    python -m training.evaluate --model assets/models/piano --data data/piano --endings 10 [--bars 8]
    python -m training.evaluate --model assets/models/piano --data data/piano --forms 16 [--bars 16]

For each of ``n`` held-out prompts (their first 12 s, spread over the split) one continuation of ``bars``
bars is sampled (maia/form.py's time fill: it ends on the bar line with every key released), then closed
each way below, on the same continuation:

- ``none``: as sampled (the baseline);
- ``chord``: the last bar becomes the home key's tonic chord, nothing rewritten;
- ``fim``: the chord, and the two bars before it rewritten toward it by fill-in-the-middle (1 candidate);
- ``fim+rerank``: the same with 4 candidates, the one whose ending the model finds least surprising kept;
- ``homecoming``: a second continuation, sampled with the home key's pull over its last third
  (maia.form.homecoming, as ``--end`` composes), closed as ``fim+rerank``.

Per way: the share whose final chord has the home key's tonic as its lowest note, the share whose
continuation stays in the key (same or relative), the bits per note (left to right) of the last three
bars, next to the baseline's over the same bars, and of the whole continuation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tqdm import tqdm

from maia import form
from maia.generate import SamplingConfig, ids_to_piece
from maia.metrics import estimate_key, same_key_or_relative

WAYS = ("none", "chord", "fim", "fim+rerank", "homecoming")


def close(model, vocab, case, piece, key, cfg, way: str, end: int):
    """``piece`` closed the ``way`` named (one of WAYS)."""
    if way == "none":
        return piece
    if way == "homecoming":
        way = "fim+rerank"
    bars, candidates = {"chord": (0, 1), "fim": (2, 1), "fim+rerank": (2, 4)}[way]
    out, _ = form.end_in_key(model, vocab, case.prompt.composer, piece, key, cfg, case.prompt.steps, bars, candidates,
                             end=end)
    return out


def endings(model, vocab, cases, cfg: SamplingConfig, bars: int = 8) -> dict:
    """{way: {"tonic_bass": share, "key_kept": share, "ending_bits_per_note": mean}} over ``cases``."""
    found = {w: {"tonic_bass": [], "key_kept": [], "ending_bits_per_note": [], "bits_per_note": []} for w in WAYS}
    spq = vocab.config.steps_per_quarter
    for k, case in enumerate(tqdm(cases, desc="endings", leave=False)):
        prompt = case.prompt
        bar = form.bar_steps(prompt.time_signature, spq)
        steps = form.length_steps(prompt.steps, prompt.time_signature, prompt.tempo_qpm, bars, None, spq)
        budget = form.token_budget(prompt.ids, prompt.steps, steps, 4096)
        c = replace(cfg, seed=k, variations=1, max_new_tokens=budget)
        ids = form.continue_for(model, vocab, prompt.ids, c, steps)[0]
        piece = ids_to_piece(ids, vocab, prompt)
        key = form.home_key(case.prompt_piece, None, piece)
        home = form.homecoming(form.layout(vocab, prompt, bars=bars, end=True), None, case.prompt_piece)
        pulled = ids_to_piece(form.continue_for(model, vocab, prompt.ids, c, steps, home)[0], vocab, prompt)
        end = prompt.steps + steps
        tail_from = end - 3 * bar
        for way in WAYS:
            out = close(model, vocab, case, pulled if way == "homecoming" else piece, key, c, way, end)
            cont = out.notes[out.notes[:, 0] >= prompt.steps]
            found[way]["tonic_bass"].append(form.ends_on_tonic(out, key))
            found[way]["key_kept"].append(same_key_or_relative((*key, 1.0), estimate_key(cont)))
            found[way]["ending_bits_per_note"].append(
                form.tail_bits_per_note(model, vocab, out, prompt.composer, tail_from))
            found[way]["bits_per_note"].append(form.tail_bits_per_note(model, vocab, out, prompt.composer, prompt.steps))
    return {w: {m: float(np.nanmean(v)) for m, v in d.items()} | {"n": len(cases)} for w, d in found.items()}


FORMS = ("none", "ABA", "rondo")


def forms(model, vocab, cases, cfg: SamplingConfig, bars: int = 16, theme_bars: int = 4, max_tokens: int = 8192) -> dict:
    """{way: per-piece means} for each of FORMS applied to the same continuation of ``bars`` bars, and for
    the real continuations over the same span: motif recurrence (over the whole span and its last quarter),
    key kept, two-pitch run, distinct pitches, and the model's bits per note of the continuation read left to
    right. Up to ``max_tokens`` are sampled (more than the server allows, so that long spans are filled)."""
    from maia import listener

    found: dict[str, list[dict]] = {w: [] for w in (*FORMS, "real")}
    spq = vocab.config.steps_per_quarter
    for k, case in enumerate(tqdm(cases, desc="forms", leave=False)):
        prompt = case.prompt
        bar = form.bar_steps(prompt.time_signature, spq)
        steps = form.length_steps(prompt.steps, prompt.time_signature, prompt.tempo_qpm, bars, None, spq)
        c = replace(cfg, seed=k, variations=1, max_new_tokens=form.token_budget(prompt.ids, prompt.steps, steps,
                                                                                  max_tokens))
        ids = form.continue_for(model, vocab, prompt.ids, c, steps)[0]
        piece = ids_to_piece(ids, vocab, prompt)
        origin = prompt.steps + (-prompt.steps) % bar
        tb = max(1, min(theme_bars, prompt.steps // bar))
        src = case.prompt_piece.notes
        theme = src[src[:, 0] < tb * bar]
        shift = np.array([prompt.steps, 0, 0, 0])
        real = replace(piece, notes=np.concatenate([case.prompt_piece.notes, case.real.notes + shift]))
        for way in (*FORMS, "real"):
            if way == "real":
                out = real
            elif way == "none":
                out = piece
            else:
                plan = form.plan(way, (prompt.steps + steps - origin) // bar, tb, False)
                out = form.apply_form(model, vocab, prompt.composer, piece, replace(piece, notes=theme), origin, plan,
                                      c, prompt.steps + steps)
            cont = replace(out, notes=out.notes[out.notes[:, 0] >= prompt.steps] - shift)
            row = listener.per_piece(case.prompt_piece, cont)
            span = case.steps if way == "real" else steps
            late = cont.notes[cont.notes[:, 0] >= span * 3 // 4]  # the last quarter: is the theme still there?
            row["late_motif_recurrence"] = listener.motif_recurrence(case.prompt_piece, late)
            row["tokens"] = len(case.real_ids) if way == "real" else len(ids) - len(prompt.ids)
            row["bits_per_note"] = form.tail_bits_per_note(model, vocab, out, prompt.composer, prompt.steps)
            found[way].append(row)
    keys = ("motif_recurrence", "late_motif_recurrence", "key_kept", "two_pitch_run", "distinct_pitches_10s",
            "bits_per_note", "tokens")
    return {w: {m: float(np.nanmean([r[m] for r in rows])) for m in keys} | {"n": len(rows)} for w, rows in found.items()}


def report_forms(result: dict, bars: int) -> str:
    ways = (*FORMS, "real")
    lines = [f"{result['none']['n']} held-out prompts (their first 12 s), each continued for {bars} bars; the same "
             "continuation with the prompt's opening bars brought back as each form asks (fill-in-the-middle joins), "
             "and the real continuation over the same span", "", "| | " + " | ".join(ways) + " |",
             "|---|" + "---:|" * len(ways)]
    for m, label in (("tokens", "tokens sampled (mean)"),
                     ("motif_recurrence", "motif recurrence (4-note top-line patterns of the prompt)"),
                     ("late_motif_recurrence", "motif recurrence in the last quarter"),
                     ("key_kept", "key kept (same or relative)"), ("two_pitch_run", "longest two-pitch run, s"),
                     ("distinct_pitches_10s", "distinct pitches per 10 s"),
                     ("bits_per_note", "bits per note of the continuation (the model, left to right)")):
        lines.append(f"| {label} | " + " | ".join(f"{result[w][m]:.2f}" for w in ways) + " |")
    return "\n".join(lines)


def report(result: dict, bars: int) -> str:
    lines = [f"{result['none']['n']} held-out prompts (their first 12 s), each continued for {bars} bars, then closed "
             "each way on the same continuation",
             "", "| | " + " | ".join(WAYS) + " |", "|---|" + "---:|" * len(WAYS)]
    for m, label in (("tonic_bass", "final chord's lowest note is the home tonic"),
                     ("key_kept", "continuation in the home key (same or relative)"),
                     ("ending_bits_per_note", "bits per note of the last 3 bars"),
                     ("bits_per_note", "bits per note of the whole continuation")):
        fmt = "{:.2f}"
        lines.append(f"| {label} | " + " | ".join(fmt.format(result[w][m]) for w in WAYS) + " |")
    return "\n".join(lines)
