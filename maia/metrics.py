"""Musical statistics of pieces, and how closely two sets of pieces agree on them.

In the spirit of Yang & Lerch (2018), "On the evaluation of generative models in music": compute a few
interpretable features per piece for two sets (say, generated continuations and held-out music), smooth
each set's values into a density (a Gaussian KDE) and report the *overlapping area* of the two densities:
1 when the sets are indistinguishable on that feature, 0 when they never meet. Features:

    pitch_class      share of notes on each of the 12 pitch classes (the sets' pooled histograms overlap)
    pitch_range      highest minus lowest MIDI pitch, semitones
    notes_per_second notes per second at the piece's tempo
    polyphony        mean number of notes sounding, over the time steps where any note sounds
    ioi              mean inter-onset interval, seconds between successive distinct onset times

The overlap of a feature is symmetric, lies in [0, 1] and is 1 for identical sets.
"""

from __future__ import annotations

import numpy as np

from maia.encoding import Piece

SCALAR_FEATURES = ("pitch_range", "notes_per_second", "polyphony", "ioi")


def pitch_class_histogram(piece: Piece) -> np.ndarray:
    """(12,) share of the piece's notes on C, C#, ..., B; all zeros for an empty piece."""
    h = np.bincount(piece.notes[:, 2] % 12, minlength=12).astype(np.float64)
    return h / h.sum() if h.sum() else h


def pitch_range(piece: Piece) -> float:
    """Highest minus lowest pitch in semitones; NaN for an empty piece."""
    p = piece.notes[:, 2]
    return float(p.max() - p.min()) if len(p) else float("nan")


def notes_per_second(piece: Piece) -> float:
    """Notes per second from the first onset to the last note's end; NaN for an empty piece."""
    if not len(piece):
        return float("nan")
    span = piece.end_step - int(piece.notes[:, 0].min())
    return len(piece) / (span * piece.seconds_per_step)


def polyphony(piece: Piece) -> float:
    """Mean number of sounding notes over the grid steps where at least one note sounds."""
    n = piece.notes
    if not len(n):
        return float("nan")
    delta = np.zeros(piece.end_step + 1, np.int64)
    np.add.at(delta, n[:, 0], 1)
    np.add.at(delta, n[:, 0] + n[:, 1], -1)
    sounding = np.cumsum(delta)[:-1]  # (end_step,) notes sounding during each step
    return float(sounding[sounding > 0].mean())


def inter_onset_intervals(piece: Piece) -> np.ndarray:
    """Seconds between successive distinct onset times (chords count once)."""
    onsets = np.unique(piece.notes[:, 0])
    return np.diff(onsets) * piece.seconds_per_step


def mean_ioi(piece: Piece) -> float:
    ioi = inter_onset_intervals(piece)
    return float(ioi.mean()) if len(ioi) else float("nan")


def features(piece: Piece) -> dict[str, float]:
    """The scalar features of one piece (NaN where a feature is undefined, e.g. an empty piece)."""
    return {
        "pitch_range": pitch_range(piece),
        "notes_per_second": notes_per_second(piece),
        "polyphony": polyphony(piece),
        "ioi": mean_ioi(piece),
    }


def histogram_overlap(p, q) -> float:
    """Overlapping area of two discrete distributions (each normalised to sum 1): sum of the minima."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(np.minimum(p / p.sum(), q / q.sum()).sum())


def _bandwidth(x: np.ndarray, fallback: float) -> float:
    """Scott's rule, std * n^(-1/5); a constant sample borrows the fallback."""
    sd = x.std(ddof=1) if len(x) > 1 else 0.0
    return sd * len(x) ** -0.2 if sd > 0 else fallback


def kde_overlap(a, b, grid: int = 2048) -> float:
    """Overlapping area of the Gaussian KDEs of two samples: the integral of min(f_a, f_b), in [0, 1].
    NaNs are dropped; NaN if either sample is then empty."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if not len(a) or not len(b):
        return float("nan")
    both = np.concatenate([a, b])
    pooled = _bandwidth(both, 0.0) or max(abs(both.mean()) * 0.05, 1e-3)  # all values equal: any width
    ha, hb = _bandwidth(a, pooled), _bandwidth(b, pooled)
    h = max(ha, hb)
    x = np.linspace(both.min() - 5 * h, both.max() + 5 * h, grid)

    def density(s, bw):  # (grid,) mean of one Gaussian per sample point
        z = (x[:, None] - s[None, :]) / bw
        return np.exp(-0.5 * z * z).sum(axis=1) / (len(s) * bw * np.sqrt(2 * np.pi))

    return float(np.clip(np.trapezoid(np.minimum(density(a, ha), density(b, hb)), x), 0.0, 1.0))


def compare(generated: list[Piece], reference: list[Piece]) -> dict:
    """Feature summaries of two sets of pieces and their overlaps:
    {feature: {"generated": {mean, std}, "reference": {mean, std}, "overlap": float}}; pitch_class also
    holds both sets' pooled 12-bin histograms."""
    out = {}
    gh = np.sum([pitch_class_histogram(p) * len(p) for p in generated], axis=0) if generated else np.zeros(12)
    rh = np.sum([pitch_class_histogram(p) * len(p) for p in reference], axis=0) if reference else np.zeros(12)
    out["pitch_class"] = {
        "generated": [round(float(v), 4) for v in gh / max(gh.sum(), 1)],
        "reference": [round(float(v), 4) for v in rh / max(rh.sum(), 1)],
        "overlap": histogram_overlap(gh, rh),
    }
    gf = [features(p) for p in generated]
    rf = [features(p) for p in reference]
    for name in SCALAR_FEATURES:
        g = np.array([f[name] for f in gf], np.float64)
        r = np.array([f[name] for f in rf], np.float64)
        out[name] = {"generated": _summary(g), "reference": _summary(r), "overlap": kde_overlap(g, r)}
    return out


def _summary(x: np.ndarray) -> dict:
    x = x[~np.isnan(x)]
    if not len(x):
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(x.mean()), "std": float(x.std()), "n": len(x)}


# ---- keys ---------------------------------------------------------------------------------------------
# Krumhansl & Kessler's (1982) probe-tone profiles, C major and C minor; the other keys are rotations.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def duration_pitch_classes(notes: np.ndarray) -> np.ndarray:
    """(12,) total duration (grid steps) on each pitch class of a (N, 4) note table."""
    return np.bincount(notes[:, 2] % 12, weights=notes[:, 1], minlength=12).astype(np.float64)


def estimate_key(piece_or_notes) -> tuple[int, str, float]:
    """The Krumhansl-Schmuckler key: (tonic pitch class, 'major'|'minor', correlation) of the 24 keys
    whose profile best correlates with the duration-weighted pitch classes; (-1, '', nan) without notes."""
    notes = piece_or_notes.notes if isinstance(piece_or_notes, Piece) else np.asarray(piece_or_notes)
    h = duration_pitch_classes(notes) if len(notes) else np.zeros(12)
    if not h.any() or h.std() == 0:
        return -1, "", float("nan")
    best = (-1, "", -2.0)
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(h, np.roll(profile, tonic))[0, 1])
            if r > best[2]:
                best = (tonic, mode, r)
    return best


def key_name(key: tuple[int, str, float]) -> str:
    return f"{PITCH_NAMES[key[0]]} {key[1]}" if key[0] >= 0 else "?"


def same_key_or_relative(a: tuple[int, str, float], b: tuple[int, str, float]) -> bool:
    """True when b is a's key or its relative (D minor ~ F major)."""
    if a[0] < 0 or b[0] < 0:
        return False
    if a[1] == b[1]:
        return a[0] == b[0]
    relative = (a[0] + 3) % 12 if a[1] == "minor" else (a[0] - 3) % 12
    return b[0] == relative


def pitch_class_correlation(a: Piece, b: Piece) -> float:
    """Pearson correlation of two pieces' duration-weighted pitch-class histograms (NaN if either is flat)."""
    ha, hb = duration_pitch_classes(a.notes), duration_pitch_classes(b.notes)
    if ha.std() == 0 or hb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ha, hb)[0, 1])
