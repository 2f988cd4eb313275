"""Regenerate a passage: cut a piece at two times, let a fill-in-the-middle model write the gap, join.

    span = split_span(piece, vocab, "chopin", start_step, end_step, max_context=1024, middle_tokens=256)
    for tokens in generate.infill(model, span.prefix_ids, span.suffix_ids, span.steps, cfg, vocab): ...
    new_piece = join_span(span, middle_ids, vocab)

What is kept, exactly: every note with its onset before the span and every note with its onset at or after
its end, with their onsets, pitches, velocities and durations (a kept note is only shortened where a new
note strikes its key again, as on a piano). The new notes are the decoded middle, all with onsets in the
span; a new note still held at the span's end is released there, so nothing hangs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from maia.encoding import Piece, decode_ids, encode_ids, expand_merges, normalize_notes
from maia.errors import InputError
from maia.vocab import Vocab


@dataclass
class Span:
    """A piece cut for infilling: model-ready ids before and after the gap and the kept notes."""

    prefix_ids: list[int]  # <composer:X> <start> ... music before the gap, ending exactly at start_step
    suffix_ids: list[int]  # music from end_step on (with its dynamics level restated), ending with <end>
    start_step: int
    end_step: int
    kept: np.ndarray  # (N, 4) the notes kept bit for bit
    piece: Piece

    @property
    def steps(self) -> int:
        return self.end_step - self.start_step


def _waits(n: int, vocab: Vocab) -> list[int]:
    """Wait tokens advancing time by n steps (full waits, then the remainder)."""
    m = vocab.config.max_wait
    return [vocab.wait_offset + m] * (n // m) + ([vocab.wait_offset + n % m] if n % m else [])


def split_span(piece: Piece, vocab: Vocab, composer: str | None, start_step: int, end_step: int,
               max_context: int | None = None, middle_tokens: int = 256) -> Span:
    """Cuts ``piece`` at [start_step, end_step) into prefix and suffix ids (base notewise tokens). With
    ``max_context``, the prefix loses its oldest tokens and the suffix its last ones until both, the four
    markers and ``middle_tokens`` fit the window."""
    if not 0 <= start_step < end_step:
        raise InputError(f"the passage must have a start before its end (got steps {start_step}..{end_step})")
    if end_step > piece.end_step + 4 * piece.steps_per_quarter * 16:
        raise InputError("the passage lies past the end of the music")
    ids = [int(i) for i in encode_ids(piece, vocab, composer)]
    w0, max_wait = vocab.wait_offset, vocab.config.max_wait
    v0, n_vel = vocab.velocity_offset, vocab.config.n_velocity_bins
    prefix: list[int] = []
    suffix: list[int] = []
    t, last, level, restate = 0, 0, None, None  # time, the prefix's last event time, dynamics level in force
    for i in ids:
        if w0 < i <= w0 + max_wait:
            t += i - w0
            if suffix:  # past the gap, the tokens are kept as they are
                suffix.append(i)
            continue
        is_level = v0 <= i < v0 + n_vel
        if i == vocab.end_id or t >= end_step:
            if not suffix:
                suffix = _waits(max(t - end_step, 0), vocab)
                restate = level  # the suffix restates the dynamics level in force before its first note-on
            if is_level:
                restate = None
            elif restate is not None and vocab.on_offset + vocab.config.pitch_lo <= i < vocab.off_offset + vocab.config.pitch_lo:
                suffix.append(v0 + restate)
                restate = None
            suffix.append(i)
        elif vocab.is_composer(i) or i == vocab.start_id or t < start_step:
            prefix += [*_waits(t - last, vocab), i]
            last = t
        # events inside the span are the music being replaced: dropped
        if is_level:
            level = i - v0
    prefix += _waits(start_step - last, vocab)
    if vocab.merges:
        from maia.merges import apply_merges

        prefix, suffix = ([int(x) for x in apply_merges(s, vocab)] for s in (prefix, suffix))
    if max_context is not None:
        room = max_context - 4 - middle_tokens
        if room < 8:
            raise InputError(f"the model's window ({max_context}) is too small for a {middle_tokens}-token middle")
        keep_suffix = min(len(suffix), max(room // 3, room - (len(prefix) - 2)))
        keep_prefix = room - keep_suffix
        if len(prefix) > keep_prefix:  # keep the composer token, drop the oldest music
            prefix = prefix[:1] + prefix[len(prefix) - keep_prefix + 1 :]
        suffix = suffix[:keep_suffix]
    n = piece.notes
    kept = n[(n[:, 0] < start_step) | (n[:, 0] >= end_step)]
    return Span(prefix, suffix, start_step, end_step, kept.copy(), piece)


def join_span(span: Span, middle_ids: Sequence[int], vocab: Vocab) -> Piece:
    """The piece with the span replaced by the decoded middle (tokens after ``<fim:end>`` are ignored)."""
    middle = [int(i) for i in expand_merges(list(middle_ids), vocab)]
    if vocab.fim and vocab.fim_end_id in middle:
        middle = middle[: middle.index(vocab.fim_end_id)]
    # Decode the middle in the context of the prefix's dynamics: the level in force at the gap.
    base_prefix = [int(i) for i in expand_merges(list(span.prefix_ids), vocab)]
    v0, n_vel = vocab.velocity_offset, vocab.config.n_velocity_bins
    levels = [i for i in base_prefix if v0 <= i < v0 + n_vel]
    head = [vocab.start_id, *levels[-1:]]
    new = decode_ids(head + middle, vocab).notes.copy()
    new[:, 0] += span.start_step
    new = new[new[:, 0] < span.end_step]
    new[:, 1] = np.minimum(new[:, 1], span.end_step - new[:, 0])  # released at the end of the span at the latest
    notes = np.concatenate([span.kept, new])
    notes = normalize_notes(notes[:, 0], notes[:, 0] + notes[:, 1], notes[:, 2], notes[:, 3], vocab.config)
    return replace(span.piece, notes=notes)


def beats_to_steps(piece: Piece, from_beat: float, to_beat: float) -> tuple[int, int]:
    """Quarter-note beats (from 0) -> grid steps, checked against the piece."""
    spq = piece.steps_per_quarter
    a, b = round(from_beat * spq), round(to_beat * spq)
    if from_beat < 0 or b <= a:
        raise InputError(f"from beat {from_beat:g} to beat {to_beat:g}: need 0 <= from < to")
    if a >= piece.end_step:
        raise InputError(f"beat {from_beat:g} is past the end of the music ({piece.end_step / spq:g} beats)")
    return a, b
