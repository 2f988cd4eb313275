"""Judge music as a listener would: what is played, whether themes come back, whether it gets stuck.

Two kinds of measures, each comparing generated continuations with the real continuations of the same
prompts (Yang & Lerch 2018's overlapping areas; Lehmkuhl et al. 2025 on why likelihood alone misleads):

- **Distributions** pooled over all notes of a set, as histograms on fixed bins, compared by their overlap
  (sum of the bin-wise minima: 1 for identical distributions, 0 for disjoint ones): ``pitch``, ``pitch
  around the prompt's centre`` (the prompt's median pitch), ``ioi`` (seconds between distinct onsets),
  ``duration`` (seconds), ``velocity`` and ``chord size`` (notes struck at one onset).
- **Per piece**: notes per second, pitch range, notes held longer than 4 s, motif recurrence (the share of
  the continuation's 4-note melodic patterns, as intervals of its top line, that occur in the prompt), the
  longest stretch whose onsets use at most two pitches (seconds), distinct pitches per 10 s, and notes
  never released by the sequence (counted on the tokens).

    prompt, cont = read("a.mid"), read("b.mid")
    motif_recurrence(prompt, cont); longest_two_pitch_run(cont); distribution_overlaps([g], [r], [prompt])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maia.encoding import Piece, expand_merges
from maia.vocab import Vocab

HOLD_SECONDS = 4.0  # a note held longer than this counts as hanging on (no prompt in the corpus has one over 2.5 s)
MOTIF_NOTES = 4  # motif length in notes: 3 intervals
WINDOW_SECONDS = 10.0  # for distinct pitches per window

# Fixed bins of each distribution (edges), so that sets of different sizes are comparable.
BINS = {
    "pitch": np.arange(20.5, 109.5, 1.0),  # the 88 keys
    "pitch_around_centre": np.arange(-48.5, 49.5, 1.0),  # semitones from the prompt's median pitch
    "ioi": np.r_[np.arange(0.0, 2.01, 0.05), np.inf],  # seconds, 50 ms bins, then "longer"
    "duration": np.r_[np.arange(0.0, 4.01, 0.1), np.inf],  # seconds, 100 ms bins, then "longer"
    "velocity": np.arange(0.5, 128.5, 16.0),  # the eight dynamics levels
    "chord_size": np.r_[np.arange(0.5, 10.5, 1.0), np.inf],  # 1..9 notes at one onset, then "more"
}
DISTRIBUTIONS = tuple(BINS)


# ---- the top line and its motifs ----------------------------------------------------------------
def top_line(notes: np.ndarray) -> np.ndarray:
    """(M,) the highest pitch struck at each distinct onset, in time order."""
    if not len(notes):
        return np.zeros(0, np.int64)
    order = np.lexsort((-notes[:, 2], notes[:, 0]))  # by onset, highest pitch first
    n = notes[order]
    first = np.r_[True, n[1:, 0] != n[:-1, 0]]
    return n[first, 2]


def motifs(notes: np.ndarray, size: int = MOTIF_NOTES) -> list[tuple[int, ...]]:
    """The top line's ``size``-note patterns as tuples of ``size - 1`` intervals (transposition-free)."""
    steps = np.diff(top_line(notes))
    k = size - 1
    return [tuple(int(x) for x in steps[i : i + k]) for i in range(len(steps) - k + 1)]


def motif_recurrence(prompt: Piece | np.ndarray, continuation: Piece | np.ndarray, size: int = MOTIF_NOTES) -> float:
    """Share of the continuation's motifs (counted with repeats) that occur anywhere in the prompt; NaN
    when the continuation has none."""
    known = set(motifs(_notes(prompt), size))
    found = motifs(_notes(continuation), size)
    if not found:
        return float("nan")
    return sum(m in known for m in found) / len(found)


# ---- collapse --------------------------------------------------------------------------------------
def longest_two_pitch_run(piece: Piece) -> float:
    """Seconds of the longest stretch of consecutive onsets that together use at most two pitches: from the
    stretch's first onset to the next onset that brings a third pitch (or to the end of the music)."""
    n = piece.notes
    if not len(n):
        return 0.0
    onsets = np.unique(n[:, 0])
    groups = [set(n[n[:, 0] == t, 2].tolist()) for t in onsets]
    ends = np.r_[onsets[1:], piece.end_step]  # where a stretch ending at group j stops
    best, i, count = 0, 0, {}  # two pointers over onset groups; count: pitch -> groups in the window
    for j, g in enumerate(groups):
        for p in g:
            count[p] = count.get(p, 0) + 1
        while len(count) > 2:
            for p in groups[i]:
                count[p] -= 1
                if not count[p]:
                    del count[p]
            i += 1
        if i <= j:
            best = max(best, int(ends[j] - onsets[i]))
    return best * piece.seconds_per_step


def distinct_pitches_per_window(piece: Piece, seconds: float = WINDOW_SECONDS) -> float:
    """Mean number of distinct pitches struck in each whole ``seconds`` window (a shorter piece: its one
    window); NaN for an empty piece."""
    n = piece.notes
    if not len(n):
        return float("nan")
    t = n[:, 0] * piece.seconds_per_step
    k = max(1, int(t.max() // seconds))
    return float(np.mean([len(np.unique(n[(t >= i * seconds) & (t < (i + 1) * seconds), 2])) for i in range(k)]))


def long_notes(piece: Piece, seconds: float = HOLD_SECONDS) -> int:
    """Notes that sound longer than ``seconds``."""
    return int((piece.notes[:, 1] * piece.seconds_per_step > seconds).sum())


def unreleased_notes(ids: Sequence[int], vocab: Vocab) -> int:
    """Note-ons in ``ids`` that no note-off (or a new strike of the key) closes before the sequence ends."""
    lo, hi = vocab.config.pitch_lo, vocab.config.pitch_hi
    on0, off0 = vocab.on_offset, vocab.off_offset
    held: set[int] = set()
    for i in expand_merges([int(x) for x in ids], vocab):
        if i == vocab.end_id:
            break
        if on0 + lo <= i <= on0 + hi:
            held.add(i - on0)
        elif off0 + lo <= i <= off0 + hi:
            held.discard(i - off0)
    return len(held)


# ---- distributions -----------------------------------------------------------------------------------
def values(piece: Piece, name: str, centre: float = 0.0) -> np.ndarray:
    """The values one piece adds to distribution ``name`` (one per note, per onset or per interval)."""
    n = piece.notes
    if name == "pitch":
        return n[:, 2].astype(np.float64)
    if name == "pitch_around_centre":
        return n[:, 2] - float(centre)
    if name == "ioi":
        return np.diff(np.unique(n[:, 0])) * piece.seconds_per_step
    if name == "duration":
        return n[:, 1] * piece.seconds_per_step
    if name == "velocity":
        return n[:, 3].astype(np.float64)
    if name == "chord_size":
        return np.unique(n[:, 0], return_counts=True)[1].astype(np.float64)
    raise KeyError(name)


def histogram(pieces: Sequence[Piece], name: str, centres: Sequence[float] | None = None) -> np.ndarray:
    """The pooled, normalised histogram of distribution ``name`` over ``pieces`` (zeros when empty)."""
    vals = [values(p, name, c) for p, c in zip(pieces, centres if centres is not None else [0.0] * len(pieces), strict=True)]
    h = np.histogram(np.concatenate(vals) if vals else np.zeros(0), BINS[name])[0].astype(np.float64)
    return h / h.sum() if h.sum() else h


def overlap(p: np.ndarray, q: np.ndarray) -> float:
    """Sum of the bin-wise minima of two normalised histograms; NaN if either is empty."""
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(np.minimum(p / p.sum(), q / q.sum()).sum())


def centre(prompt: Piece) -> float:
    """The prompt's centre: its median pitch (60 when it has no notes)."""
    return float(np.median(prompt.notes[:, 2])) if len(prompt) else 60.0


def distribution_overlaps(generated: Sequence[Piece], reference: Sequence[Piece], prompts: Sequence[Piece]) -> dict:
    """{distribution: overlap} of generated and reference continuations, continuation k of either set
    belonging to prompt k (for the pitch around the prompt's centre), and their mean as "mean"."""
    centres = [centre(p) for p in prompts]
    out = {name: overlap(histogram(generated, name, centres), histogram(reference, name, centres)) for name in DISTRIBUTIONS}
    out["mean"] = float(np.nanmean([out[k] for k in DISTRIBUTIONS]))
    return out


def per_piece(prompt: Piece, cont: Piece, cont_ids: Sequence[int] | None = None, vocab: Vocab | None = None) -> dict:
    """The per-piece measures of one continuation of ``prompt``."""
    from maia import metrics

    out = {
        "notes_per_second": metrics.notes_per_second(cont),
        "pitch_range": metrics.pitch_range(cont),
        "long_notes": long_notes(cont),
        "motif_recurrence": motif_recurrence(prompt, cont),
        "key_kept": float(metrics.same_key_or_relative(metrics.estimate_key(prompt), metrics.estimate_key(cont))),
        "two_pitch_run": longest_two_pitch_run(cont),
        "distinct_pitches_10s": distinct_pitches_per_window(cont),
    }
    if cont_ids is not None and vocab is not None:
        out["unreleased"] = unreleased_notes(cont_ids, vocab)
    return out


PER_PIECE = ("notes_per_second", "pitch_range", "long_notes", "motif_recurrence", "key_kept", "two_pitch_run",
             "distinct_pitches_10s", "unreleased")


def summarise(rows: Sequence[dict]) -> dict:
    """Mean (and max, for the two-pitch run) of each per-piece measure over ``rows``."""
    out = {}
    for k in PER_PIECE:
        v = np.array([r[k] for r in rows if k in r], np.float64)
        v = v[~np.isnan(v)]
        out[k] = float(v.mean()) if len(v) else float("nan")
    runs = [r["two_pitch_run"] for r in rows]
    out["two_pitch_run_max"] = float(max(runs)) if runs else float("nan")
    return out


def _notes(x) -> np.ndarray:
    return x.notes if isinstance(x, Piece) else np.asarray(x)
