"""Listen like a listener: sampled continuations of held-out prompts against the real ones, setting by setting.

Usage:
    python -m training.evaluate --model assets/models/piano --data data/piano --listen \
        "top_k=5; top_k=50; top_k=0,top_p=0.95; top_k=0,min_p=0.05" [--prompts 32] [--prompt-seconds 12] \
        [--seconds 24]

Steps:
  1. prompts: the first ``prompt_seconds`` of ``n`` held-out pieces spread evenly over the split (pieces
     shorter than prompt + continuation are skipped); the real continuation is the next ``seconds``;
  2. for each sampling setting, one continuation per prompt (seed k for prompt k) over exactly the same
     span of time (maia.generate's time budget, as ``--seconds`` uses);
  3. per piece and pooled measures (maia/listener.py) of each setting's continuations and of the real
     ones, printed side by side as one markdown table.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from tqdm import tqdm

from maia import listener
from maia.compose import Composition
from maia.encoding import Piece
from maia.errors import InputError
from maia.generate import Prompt, SamplingConfig, ids_to_piece
from maia.vocab import Vocab


@dataclass
class Case:
    """One held-out prompt and its real continuation."""

    prompt: Prompt
    prompt_piece: Piece
    real: Piece  # the real continuation, moved to start at step 0
    real_ids: list[int]
    steps: int  # the continuation's span in grid steps


def parse_settings(text: str, base: SamplingConfig | None = None) -> list[tuple[str, SamplingConfig]]:
    """'top_k=5; top_k=0,min_p=0.05; guards=off' -> [(label, SamplingConfig)]. ``guards=off`` turns both
    collapse guards off; ``none`` is the literal None."""
    base = base or SamplingConfig()
    names = {f.name: f.type for f in fields(SamplingConfig)}
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        kw = {}
        for item in filter(None, (x.strip() for x in part.split(","))):
            key, _, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if key == "guards":
                if value not in ("on", "off"):
                    raise InputError(f"guards=on or guards=off, not {value!r}")
                if value == "off":
                    kw.update(max_hold_beats=None, max_loop_beats=None)
                continue
            if key not in names:
                raise InputError(f"unknown sampling setting {key!r} in {part!r}")
            try:
                kw[key] = None if value.lower() == "none" else (int(value) if key in ("top_k", "seed") else float(value))
            except ValueError:
                raise InputError(f"{key} must be a number (or none), not {value!r}, in {part!r}") from None
        out.append((part, replace(base, **kw).validate()))
    return out


def cut_at(ids: np.ndarray, steps: int, vocab: Vocab) -> int:
    """Index of the first token at or after grid step ``steps`` (tokens before it advance time by < steps
    plus the last wait): the prompt is ids[:i]."""
    w0, mw = vocab.wait_offset, vocab.config.max_wait
    t = 0
    for i, x in enumerate(ids):
        base = vocab.expand_id(int(x))  # a merge token stands for a run of base tokens
        waits = [b - w0 for b in base if w0 < b <= w0 + mw]
        if t >= steps and len(waits) < len(base):  # not a wait alone
            return i
        t += sum(waits)
    return len(ids)


def cases(pieces, entries, vocab: Vocab, n: int, prompt_seconds: float, seconds: float, tempo_of) -> list[Case]:
    """``n`` prompts (or as many pieces as are long enough) spread evenly over the held-out ``pieces``."""
    from maia.generate import time_steps

    spq = vocab.config.steps_per_quarter
    usable = []
    for p, e in zip(pieces, entries, strict=True):
        tempo = e.get("tempo") or tempo_of(p, e)
        per_second = tempo * spq / 60.0
        a, b = round(prompt_seconds * per_second), round(seconds * per_second)
        if e.get("seconds", 0) >= prompt_seconds + seconds + 1:
            usable.append((p, e, tempo, a, b))
    chosen = sorted({round(k * len(usable) / n) % len(usable) for k in range(n)}) if usable and n > 0 else []
    out = []
    for p, e, tempo, a, b in (usable[i] for i in chosen):
        ids = [int(x) for x in p]
        i = cut_at(ids, a, vocab)
        head = ids[:i]
        prompt = Prompt(head, e["composer"], tempo, None, time_steps(head, vocab))
        j = cut_at(ids, prompt.steps + b, vocab)
        real_full = ids_to_piece(ids[:j], vocab, prompt)
        real = _after(real_full, prompt.steps, prompt.steps + b)
        out.append(Case(prompt, ids_to_piece(head, vocab, prompt), real, ids[i:j], b))
    return out


def _after(piece: Piece, start: int, stop: int) -> Piece:
    """The notes with onsets in [start, stop), moved to start at 0 and cut at ``stop``."""
    n = piece.notes[(piece.notes[:, 0] >= start) & (piece.notes[:, 0] < stop)].copy()
    n[:, 1] = np.minimum(n[:, 1], stop - n[:, 0])
    n[:, 0] -= start
    return replace(piece, notes=n)


def continue_case(model, vocab: Vocab, case: Case, cfg: SamplingConfig) -> tuple[Piece, list[int]]:
    """One sampled continuation of ``case`` over its span: (piece from step 0, its new ids)."""
    budget = int(min(8192, max(256, 3 * len(case.real_ids) + 64)))
    comp = Composition.continuation(model, vocab, case.prompt, replace(cfg, max_new_tokens=budget, variations=1),
                                    steps=case.steps).sample()
    (full,) = comp.pieces()
    return _after(full, case.prompt.steps, case.prompt.steps + case.steps), comp.rows[0][comp.base:]


def measure(pieces: list[Piece], ids: list[list[int]], prompts: list[Piece], reference: list[Piece], vocab) -> dict:
    """Per-piece means and pooled overlaps with ``reference`` of one set of continuations."""
    rows = [listener.per_piece(pp, c, i, vocab) for pp, c, i in zip(prompts, pieces, ids, strict=True)]
    return {"per_piece": listener.summarise(rows), "overlap": listener.distribution_overlaps(pieces, reference, prompts)}


def listen(model, vocab: Vocab, all_cases: list[Case], settings: list[tuple[str, SamplingConfig]]) -> dict:
    """{label: measures} for the real continuations ("real") and each setting."""
    prompts = [c.prompt_piece for c in all_cases]
    reference = [c.real for c in all_cases]
    # The real continuations are cut out of longer pieces, so keys down at the cut are not "unreleased": no ids.
    out = {"real": measure(reference, [None] * len(all_cases), prompts, reference, vocab)}
    for label, cfg in settings:
        got = [continue_case(model, vocab, c, replace(cfg, seed=(cfg.seed or 0) + k))
               for k, c in enumerate(tqdm(all_cases, desc=label, leave=False))]
        out[label] = measure([g[0] for g in got], [g[1] for g in got], prompts, reference, vocab)
    return out


ROWS = [("notes per second", "per_piece", "notes_per_second", "{:.1f}"),
        ("pitch range (semitones)", "per_piece", "pitch_range", "{:.0f}"),
        ("notes held over 4 s, per piece", "per_piece", "long_notes", "{:.2f}"),
        ("motif recurrence (4-note top-line patterns found in the prompt)", "per_piece", "motif_recurrence", "{:.2f}"),
        ("key kept (same or relative)", "per_piece", "key_kept", "{:.2f}"),
        ("longest two-pitch run, s: mean", "per_piece", "two_pitch_run", "{:.2f}"),
        ("longest two-pitch run, s: longest", "per_piece", "two_pitch_run_max", "{:.2f}"),
        ("distinct pitches per 10 s", "per_piece", "distinct_pitches_10s", "{:.1f}"),
        ("notes left unreleased, per piece", "per_piece", "unreleased", "{:.2f}")]


def report(result: dict, n_cases: int, prompt_seconds: float, seconds: float) -> str:
    """The side-by-side markdown table."""
    labels = [k for k in result if k != "real"] + ["real"]
    lines = [f"{n_cases} held-out prompts (their first {prompt_seconds:g} s), continued for {seconds:g} s; the real "
             "continuations of the same prompts are the reference", "",
             "| | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for title, group, key, fmt in ROWS:
        cells = [fmt.format(result[lab][group][key]) for lab in labels]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    for name in (*listener.DISTRIBUTIONS, "mean"):
        cells = [f"{result[lab]['overlap'][name]:.2f}" for lab in labels]
        lines.append(f"| overlap with the real notes: {name.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
