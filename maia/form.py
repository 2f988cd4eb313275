"""Whole pieces: a length in bars or seconds, an ending in the home key, and a theme that comes back.

    steps = length_steps(prompt, bars=16)                   # to the next bar line, then 16 bars
    rows = continue_for(model, vocab, prompt, cfg, steps)   # every variation fills exactly that span
    piece, report = end_in_key(model, vocab, prompt, piece, key, cfg)   # a cadence on the last downbeat

How the ending is made (docs/models.md, "Whole pieces", measures each step):
1. the continuation fills exactly the asked span and releases every key on its last bar line
   (``generate(fill_steps=...)`` with the guards' closing rule);
2. the last bar becomes the home key's tonic chord, struck on its downbeat and held to the bar line: the
   tonic in the bass (near where the bass was), the triad above it near the melody's register;
3. with a fill-in-the-middle model, the bars before it are rewritten toward that chord (the model sees the
   chord as the music after the gap), ``candidates`` times, and the candidate whose ending bars the model
   finds least surprising, read left to right, is kept. A model without fill-in-the-middle keeps its bars
   and only gains the chord (the report says so).

The reprise (``reprise``) brings the prompt's opening phrase back in the home key at a bar line near
the end, and rewrites the bar before it with fill-in-the-middle so the return is approached, not pasted.

One file over 300 lines on purpose: the span, the ending and the reprise all work on one ``Layout`` of grid
steps and call each other (the reprise's join and the ending are both fill-in-the-middle rewrites), so they
are read together. maia/compose.py drives them for a composition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from maia.encoding import Piece
from maia.errors import InputError
from maia.metrics import estimate_key
from maia.vocab import Vocab

MAX_BARS = 256
MAX_SECONDS = 600.0
TOKENS_PER_STEP = 0.75  # the corpus' typical density, for pieces with no prompt to measure
MAJOR_THIRD, MINOR_THIRD, FIFTH = 4, 3, 7


def bar_steps(time_signature: tuple[int, int] | None, steps_per_quarter: int = 12) -> int:
    """Grid steps in one bar of ``time_signature`` (4/4 when None): 48 for 4/4, 36 for 3/4 and 6/8."""
    num, den = time_signature or (4, 4)
    return max(1, steps_per_quarter * 4 * num // den)


def length_steps(prompt_steps: int, time_signature: tuple[int, int] | None, tempo_qpm: float,
                 bars: int | None = None, seconds: float | None = None, steps_per_quarter: int = 12) -> int:
    """The span to compose, in grid steps, after a prompt ``prompt_steps`` long: to the next bar line and
    then ``bars`` bars of the metre, or ``seconds`` of music at the tempo (rounded to a step)."""
    if (bars is None) == (seconds is None):
        raise InputError("give a length in bars or in seconds, not both")
    if bars is not None:
        if not isinstance(bars, int | np.integer) or not 1 <= bars <= MAX_BARS:
            raise InputError(f"bars must be a whole number 1..{MAX_BARS}, not {bars!r}")
        bar = bar_steps(time_signature, steps_per_quarter)
        return (-prompt_steps) % bar + int(bars) * bar
    if not 0 < float(seconds) <= MAX_SECONDS:
        raise InputError(f"seconds must be in (0, {MAX_SECONDS:g}], not {seconds!r}")
    return max(1, round(float(seconds) * tempo_qpm * steps_per_quarter / 60.0))


def token_budget(prompt_ids: Sequence[int], prompt_steps: int, steps: int, cap: int) -> int:
    """Tokens enough to fill ``steps`` at 2.5 times the prompt's density (the corpus' without a prompt);
    at most ``cap``. The time fill always meets the span: if tokens run short it waits to the end."""
    density = (len(prompt_ids) - 2) / prompt_steps if prompt_steps >= 48 else TOKENS_PER_STEP
    return int(min(cap, max(64, 2.5 * max(density, TOKENS_PER_STEP) * steps + 32)))


def home_key(prompt: Piece | None, lock: tuple[int, str] | None, music: Piece | None = None) -> tuple[int, str]:
    """The key a piece should end in: the key lock's, else the prompt's (Krumhansl), else the music's."""
    if lock is not None:
        return lock
    for p in (prompt, music):
        if p is not None and len(p.notes):
            tonic, mode, _ = estimate_key(p)
            if tonic >= 0:
                return tonic, mode
    return 0, "major"


def cadence_chord(before: np.ndarray, key: tuple[int, str], at: int, length: int) -> np.ndarray:
    """The home key's tonic chord as notes (k, 4) at step ``at`` held ``length`` steps, voiced from the
    notes ``before`` it (N, 4): the tonic in the bass nearest to where the bass was, the triad above it
    in close position just under the melody's recent register, at the recent loudness."""
    tonic, mode = key
    third = MINOR_THIRD if mode == "minor" else MAJOR_THIRD
    recent = before[before[:, 0] >= (before[:, 0].max() - 96)] if len(before) else before
    bass_ref = int(np.percentile(recent[:, 2], 10)) if len(recent) else 48
    top_ref = int(np.percentile(recent[:, 2], 90)) if len(recent) else 72
    velocity = int(np.median(recent[:, 3])) if len(recent) else 64
    bass = min(range(24, 72), key=lambda p: (p % 12 != tonic, abs(p - bass_ref)))
    pcs = {tonic % 12, (tonic + third) % 12, (tonic + FIFTH) % 12}
    top = max(bass + 12 + 4, min(top_ref, 96))  # the chord's highest note, at least a tenth over the bass
    upper = [p for p in range(top - 11, top + 1) if p % 12 in pcs and p > bass + 4]
    pitches = sorted({bass, *upper})
    return np.array([[at, length, p, velocity] for p in pitches], np.int64)


def place_cadence(piece: Piece, key: tuple[int, str], downbeat: int, length: int) -> Piece:
    """``piece`` cut at ``downbeat`` (notes sounding past it are released there) with the tonic chord
    from ``downbeat`` for ``length`` steps as its last sound."""
    n = piece.notes[piece.notes[:, 0] < downbeat].copy()
    n[:, 1] = np.minimum(n[:, 1], downbeat - n[:, 0])
    chord = cadence_chord(n, key, downbeat, length)
    notes = np.concatenate([n, chord]) if len(n) else chord
    notes = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
    return replace(piece, notes=notes)


def final_chord(piece: Piece) -> np.ndarray:
    """The notes struck at the piece's last onset (k, 4)."""
    if not len(piece.notes):
        return piece.notes
    return piece.notes[piece.notes[:, 0] == piece.notes[:, 0].max()]


def ends_on_tonic(piece: Piece, key: tuple[int, str]) -> bool:
    """True when the lowest note of the final chord is the key's tonic."""
    chord = final_chord(piece)
    return bool(len(chord)) and int(chord[:, 2].min()) % 12 == key[0] % 12


def tail_bits_per_note(model, vocab: Vocab, piece: Piece, composer: str, from_step: int) -> float:
    """Bits per note, read left to right, of the notes from ``from_step`` on (the cost of an ending)."""
    from maia.scoring import score_piece

    surprise = score_piece(model, vocab, piece, composer)["surprise"]
    tail = [s["bits"] for s in surprise if s["onset"] * piece.steps_per_quarter >= from_step]
    return float(np.mean(tail)) if tail else float("nan")


@dataclass
class Ending:
    """What end_in_key did: the key, how many bars were rewritten, each candidate's cost, which was kept."""

    key: tuple[int, str]
    downbeat: int
    rewritten_bars: int = 0
    candidate_bits: list[float] = field(default_factory=list)
    chosen: int = 0
    message: str | None = None

    @property
    def bits_per_note(self) -> float:
        return self.candidate_bits[self.chosen] if self.candidate_bits else float("nan")


def end_in_key(model, vocab: Vocab, composer: str, piece: Piece, key: tuple[int, str], config, prompt_steps: int = 0,
               rewrite_bars: int = 2, candidates: int = 4, controls=None, end: int | None = None) -> tuple[Piece, Ending]:
    """``piece`` (which ends on a bar line) closed by a cadence in ``key``: its last bar becomes the tonic
    chord, and with a fill-in-the-middle model up to ``rewrite_bars`` bars before it (never the prompt's)
    are rewritten toward it, best of ``candidates`` by the model's left-to-right bits per note. ``end``
    is the piece's last bar line (default: the bar line at or after its last sound)."""
    bar = bar_steps(piece.time_signature, piece.steps_per_quarter)
    if end is None:
        end = -(-max(piece.end_step, prompt_steps + 1) // bar) * bar
    downbeat = end - bar
    cadenced = place_cadence(piece, key, downbeat, bar)
    ending = Ending(key, downbeat)
    room = (downbeat - prompt_steps) // bar  # whole bars between the prompt and the final chord
    bars = max(0, min(rewrite_bars, room))
    if not vocab.fim or bars == 0:
        if not vocab.fim:
            ending.message = "this model cannot fill in the middle: the cadence follows its bars as they were"
        ending.candidate_bits = [tail_bits_per_note(model, vocab, cadenced, composer, downbeat - bar)]
        return cadenced, ending
    start = downbeat - bars * bar
    out, ending.candidate_bits, ending.chosen = rewrite(model, vocab, composer, cadenced, start, downbeat, config,
                                                        candidates, controls)
    ending.rewritten_bars = bars
    return out, ending


def rewrite(model, vocab: Vocab, composer: str, piece: Piece, start: int, stop: int, config, candidates: int = 1,
            controls=None) -> tuple[Piece, list[float], int]:
    """``piece`` with steps [start, stop) rewritten by fill-in-the-middle, best of ``candidates`` (1..4) by
    the model's left-to-right bits per note from ``start`` on: (piece, each candidate's bits, chosen)."""
    from maia.generate import SamplingConfig, infill
    from maia.infill import join_span, split_span

    window = getattr(model, "max_context", None)
    middle = min(config.max_new_tokens, (window or 1024) // 2, 1024)
    span = split_span(piece, vocab, composer, start, stop, window, middle)
    cfg = SamplingConfig(**{**config.__dict__, "max_new_tokens": middle, "variations": max(1, min(4, candidates))})
    rows: list[list[int]] = [[] for _ in range(cfg.variations)]
    for step in infill(model, span.prefix_ids, span.suffix_ids, span.steps, cfg, vocab, controls):
        for row, t in zip(rows, step, strict=True):
            if t is not None:
                row.append(t)
    outs = [replace(join_span(span, row, vocab), tempo_qpm=piece.tempo_qpm, time_signature=piece.time_signature)
            for row in rows]
    if len(outs) == 1:
        return outs[0], [tail_bits_per_note(model, vocab, outs[0], composer, start)], 0
    bits = [tail_bits_per_note(model, vocab, o, composer, start) for o in outs]
    chosen = int(np.nanargmin(bits))
    return outs[chosen], bits, chosen


def transpose_to(notes: np.ndarray, src: tuple[int, str], dst: tuple[int, str]) -> np.ndarray:
    """Notes moved from key ``src`` to ``dst`` by the smallest shift between their tonics (-5..+6)."""
    shift = (dst[0] - src[0]) % 12
    shift = shift - 12 if shift > 6 else shift
    out = notes.copy()
    out[:, 2] = np.clip(out[:, 2] + shift, 21, 108)
    return out


def reprise(piece: Piece, theme: Piece, at: int, key: tuple[int, str] | None = None, length: int | None = None) -> Piece:
    """``piece`` with ``theme``'s notes (from step 0, the opening phrase) restated from step ``at`` (a bar
    line) for ``length`` steps (default: the theme's), in ``key`` when given (else as written); what
    ``piece`` had there is replaced."""
    n = theme.end_step if length is None else length
    src = estimate_key(theme)
    notes = theme.notes[theme.notes[:, 0] < n].copy()
    notes[:, 1] = np.minimum(notes[:, 1], n - notes[:, 0])
    if key is not None and src[0] >= 0:
        notes = transpose_to(notes, (src[0], src[1]), key)
    notes[:, 0] += at
    keep = piece.notes[(piece.notes[:, 0] < at) | (piece.notes[:, 0] >= at + n)].copy()
    before = keep[:, 0] < at
    keep[before, 1] = np.minimum(keep[before, 1], at - keep[before, 0])
    merged = np.concatenate([keep, notes])
    return replace(piece, notes=merged[np.lexsort((merged[:, 2], merged[:, 0]))])


FORM_NAMES = {"rondo": "ABACA", "ternary": "ABA", "song": "AABA"}


def plan(form: str, bars: int, theme_bars: int, end: bool) -> list[tuple[str, int, int]]:
    """The sections after the opening A of ``form`` ('ABA', 'AABA', 'ABACA' or rondo) in ``bars`` bars:
    [(letter, first bar, bars)]; each A restates the theme (``theme_bars``), the other letters share the
    rest, and with ``end`` the last bar is kept for the cadence."""
    letters = FORM_NAMES.get(form.strip().lower(), form.strip().upper())
    if not letters.isalpha() or not letters.isascii() or letters[0] != "A" or "A" not in letters[1:] \
            or len(letters) > 12:
        raise InputError(f"form {form!r}: write sections as letters that start and come back with A, e.g. ABA, "
                         "AABA, ABACA or rondo")
    rest = letters[1:]
    free = [x for x in rest if x != "A"]
    room = bars - (1 if end else 0) - rest.count("A") * theme_bars
    if (free and room < 2 * len(free)) or (not free and room != 0) or room < 0:
        need = (1 if end else 0) + rest.count("A") * theme_bars + 2 * len(free)
        raise InputError(f"form {letters} with a {theme_bars}-bar theme needs {need} bars or more, not {bars}"
                         if free else f"form {letters} needs a contrasting section (a letter other than A)")
    sizes = [room // len(free) + (i < room % len(free)) for i in range(len(free))] if free else []
    out, pos, k = [], 0, 0
    for x in rest:
        n = theme_bars if x == "A" else sizes[k]
        k += x != "A"
        out.append((x, pos, n))
        pos += n
    return out


def apply_form(model, vocab: Vocab, composer: str, piece: Piece, theme: Piece, origin: int, sections, config,
               end: int, key: tuple[int, str] | None = None, controls=None) -> Piece:
    """``piece`` with ``theme`` restated at each A of ``sections`` (plan()'s, in bars from ``origin``, a bar
    line) and, with a fill-in-the-middle model, the bar before each return and the bar after it rewritten so
    the music leads into the theme and out of it. ``end`` is the piece's last bar line."""
    bar = bar_steps(piece.time_signature, piece.steps_per_quarter)
    for letter, first, n in sections:
        if letter != "A":
            continue
        at = origin + first * bar
        piece = reprise(piece, theme, at, key, n * bar)
        if not vocab.fim:
            continue
        if at - bar >= origin:  # lead in
            piece, _, _ = rewrite(model, vocab, composer, piece, at - bar, at, config, 1, controls)
        out = at + n * bar
        if out + bar <= end - bar:  # lead out, unless the cadence's bar follows
            piece, _, _ = rewrite(model, vocab, composer, piece, out, out + bar, config, 1, controls)
    return piece


def continue_for(model, vocab: Vocab, prompt_ids: Sequence[int], config, steps: int,
                 controls=None, on_step: Callable[[list[int | None]], None] | None = None) -> list[list[int]]:
    """Every variation continues ``prompt_ids`` for exactly ``steps`` grid steps and releases every key
    on its last step (the guards' closing rule): the prompt + continuation ids, one list per variation."""
    from maia.generate import generate

    rows = [list(prompt_ids) for _ in range(config.variations)]
    for step in generate(model, prompt_ids, config, vocab, fill_steps=steps, controls=controls):
        for row, t in zip(rows, step, strict=True):
            if t is not None:
                row.append(t)
        if on_step is not None:
            on_step(step)
    return rows


@dataclass(frozen=True)
class Layout:
    """Where a whole piece's parts fall, in grid steps: the span composed after the prompt, the first bar
    line after it (``origin``; after the theme when composing from nothing), the sections that bring the
    theme back (plan()'s, or None), and whether it ends with a cadence."""

    prompt_steps: int
    steps: int  # composed after the prompt
    bar: int
    origin: int
    budget: int  # tokens enough for the span
    end: bool
    sections: list | None
    theme_bars: int
    heard: Piece  # the prompt as the model reads it

    @property
    def total(self) -> int:
        return self.prompt_steps + self.steps

    @property
    def hold(self) -> int:
        """The first step that shaping (the theme's return, the ending) may change."""
        hold = self.total
        if self.sections is not None:
            first_a = min(self.origin + first * self.bar for letter, first, _ in self.sections if letter == "A")
            hold = min(hold, max(self.origin, first_a - self.bar))  # the bar leading into the theme is rewritten
        if self.end:
            rewritten = 1 if self.sections is not None else 2
            hold = min(hold, max(self.prompt_steps, self.total - self.bar - rewritten * self.bar))
        return hold

    def theme(self, piece: Piece) -> Piece:
        """The opening ``theme_bars`` bars: the prompt's, or from nothing the first composed, from step 0."""
        source = self.heard if len(self.heard) else piece
        start = source.notes[0, 0] // self.bar * self.bar if len(source) else 0  # the theme's first bar line
        notes = source.notes[(source.notes[:, 0] >= start) & (source.notes[:, 0] < start + self.theme_bars * self.bar)]
        return replace(piece, notes=notes - np.array([start, 0, 0, 0]))


def layout(vocab: Vocab, prompt, bars: int | None = None, seconds: float | None = None, end: bool = False,
           form: str | None = None, theme_bars: int = 4, max_tokens: int = 4096) -> Layout:
    """The Layout of ``bars`` bars (or ``seconds``; whole bars, the nearest, with ``end``) after ``prompt``
    (maia.generate.Prompt); InputError for a length or form that does not fit."""
    from maia.generate import ids_to_piece

    spq = vocab.config.steps_per_quarter
    bar = bar_steps(prompt.time_signature, spq)
    steps = length_steps(prompt.steps, prompt.time_signature, prompt.tempo_qpm, bars, seconds, spq)
    if end and seconds is not None:  # an ending falls on a bar line: the whole bars nearest the time asked
        steps = length_steps(prompt.steps, prompt.time_signature, prompt.tempo_qpm, max(2, round(steps / bar)), None, spq)
    pace = (len(prompt.ids) - 2) / prompt.steps if prompt.steps >= bar else TOKENS_PER_STEP  # tokens per step
    if pace * steps > max_tokens:  # the tokens would run out and the rest of the span be silence
        fits = int((max_tokens / pace - (-prompt.steps) % bar) // bar)
        asked = f"{bars} bars" if bars is not None else f"{seconds:g} s"
        raise InputError(f"{asked} need about {pace * steps:,.0f} tokens at this music's pace, and a piece here is at "
                         f"most {max_tokens:,} tokens: ask for {max(fits, 1)} bars or fewer")
    origin = prompt.steps + (-prompt.steps) % bar  # the first bar line after the prompt
    sections, heard = None, ids_to_piece(prompt.ids, vocab, prompt)
    if form:
        theme_bars = max(1, min(theme_bars, heard.end_step // bar)) if len(heard) else theme_bars
        if not len(heard):
            origin += theme_bars * bar  # from nothing, the first bars composed are the theme
        sections = plan(form, (prompt.steps + steps - origin) // bar, theme_bars, end)
    return Layout(prompt.steps, steps, bar, origin, token_budget(prompt.ids, prompt.steps, steps, max_tokens), end,
                  sections, theme_bars, heard)


def shape(model, vocab: Vocab, composer: str, lay: Layout, piece: Piece, config, controls=None, candidates: int = 4,
          prompt_piece: Piece | None = None) -> tuple[Piece, Ending | None]:
    """One sampled variation (filling ``lay``'s span) with the theme brought back and the cadence written,
    as ``lay`` says. The home key: the key lock's, else ``prompt_piece``'s (default: the prompt as read)."""
    lock = controls.key if controls is not None else None
    if lay.sections is not None:
        piece = apply_form(model, vocab, composer, piece, lay.theme(piece), lay.origin, lay.sections, config, lay.total,
                           lock, controls)
    if not lay.end:
        return piece, None
    source = prompt_piece if prompt_piece is not None else (lay.heard if len(lay.heard) else None)
    key = home_key(source, lock, piece)
    return end_in_key(model, vocab, composer, piece, key, config, lay.prompt_steps, 1 if lay.sections else 2,
                      candidates, controls, end=lay.total)


HOMECOMING = 0.5  # the home key's pull measured (a note outside its scale half as likely); off by default


def homecoming(lay: Layout, controls=None, prompt_piece: Piece | None = None, strength: float = 0.0):
    """The steering a whole piece is sampled with: ``controls``, and when it ends in its home key (``lay.end``)
    a key lock on that key from the middle of the last contrasting section (without a form: from the last
    third of the span) to the end, at ``strength`` (0: none). The music may travel first; it comes home
    before the theme returns and the cadence, as a composer's tonal plan does. Measured on the Lacrimosa it
    did not keep the key more often than chance allows (docs/models.md, "Whole pieces"), so it is off unless
    asked for. Nothing is added when the user locks a key, or composing from nothing (the home key is not
    known in advance)."""
    from maia.controls import Controls

    source = prompt_piece if prompt_piece is not None else lay.heard
    if not lay.end or strength <= 0 or source is None or not len(source.notes) or \
            (controls is not None and controls.key is not None and controls.key_strength > 0):
        return controls
    bars = (lay.total - lay.origin) // lay.bar
    if lay.sections is not None:
        _, first, n = [s for s in lay.sections if s[0] != "A"][-1]
        home_bar = first + n // 2
    else:
        home_bar = bars - max(2, bars // 3)
    start = max(0, lay.origin + home_bar * lay.bar - lay.prompt_steps)
    return replace(controls or Controls(), key=home_key(source, None), key_strength=strength, key_from=start)


def in_key_first(pieces: Sequence[Piece], key: tuple[int, str], after: int) -> int:
    """The index of the first piece whose music after step ``after`` is in ``key`` or its relative
    (Krumhansl), else 0."""
    from maia.metrics import same_key_or_relative

    for i, p in enumerate(pieces):
        if same_key_or_relative((*key, 1.0), estimate_key(p.notes[p.notes[:, 0] >= after])):
            return i
    return 0


def key_candidates_for(end: bool, source: Piece, wanted: int, variations: int) -> int:
    """How many continuations each variation samples for ``wanted`` key candidates: as many as the batch's
    rows allow (maia.generate.VARIATIONS_RANGE), and one unless the piece ends in a home key that the heard
    music ``source`` names (composing from nothing, any key is home)."""
    from maia.generate import VARIATIONS_RANGE

    return max(1, min(wanted, VARIATIONS_RANGE[1] // variations)) if end and len(source.notes) else 1


def keep_in_key(pieces: Sequence[Piece], variations: int, key: tuple[int, str], after: int) -> list[int]:
    """Per variation, which of its candidates to keep (0 the first): the rows of ``pieces`` hold candidate c
    of variation v at v + c * variations; the first whose music after step ``after`` is in ``key`` or its
    relative is kept (in_key_first)."""
    return [in_key_first(pieces[i::variations], key, after) for i in range(variations)]


__all__ = ["Ending", "Layout", "apply_form", "bar_steps", "cadence_chord", "continue_for", "end_in_key",
           "ends_on_tonic", "final_chord", "home_key", "homecoming", "in_key_first", "keep_in_key", "key_candidates_for", "layout", "length_steps", "place_cadence", "plan", "reprise", "rewrite", "shape",
           "tail_bits_per_note", "token_budget"]
