"""maia/metrics.py: features of known pieces, overlaps, and the Krumhansl-Schmuckler key."""

from __future__ import annotations

import numpy as np
import pytest

from maia import metrics
from maia.encoding import Piece

SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10]}


def scale_piece(tonic: int, mode: str, octave: int = 60, tempo: float = 120.0) -> Piece:
    """A scale up and a tonic triad held at the end: 8 quarter notes, then a whole-note chord."""
    steps = [tonic + d for d in SCALES[mode]] + [tonic + 12]
    notes = [(12 * i, 12, octave + p, 80) for i, p in enumerate(steps)]
    third = 4 if mode == "major" else 3
    notes += [(96, 48, octave + tonic + k, 80) for k in (0, third, 7)]
    n = np.array(sorted(notes), np.int64)
    return Piece(n[np.lexsort((n[:, 2], n[:, 0]))], 12, tempo, (4, 4))


@pytest.mark.parametrize("tonic,mode", [(0, "major"), (2, "minor"), (7, "major"), (9, "minor"), (10, "major"), (4, "minor")])
def test_estimate_key_of_scales(tonic, mode):
    key = metrics.estimate_key(scale_piece(tonic, mode))
    assert key[:2] == (tonic, mode) and key[2] > 0.7


def test_relative_keys_and_names():
    d_minor, f_major, a_major = (2, "minor", 0.9), (5, "major", 0.9), (9, "major", 0.9)
    assert metrics.same_key_or_relative(d_minor, d_minor) and metrics.same_key_or_relative(d_minor, f_major)
    assert metrics.same_key_or_relative(f_major, d_minor) and not metrics.same_key_or_relative(d_minor, a_major)
    assert metrics.key_name(d_minor) == "D minor" and metrics.key_name(metrics.estimate_key(Piece())) == "?"


def test_pitch_class_correlation():
    c, c_up, fsharp = scale_piece(0, "major"), scale_piece(0, "major", octave=72), scale_piece(6, "major")
    assert metrics.pitch_class_correlation(c, c_up) == pytest.approx(1.0)
    assert metrics.pitch_class_correlation(c, fsharp) < 0


def test_features_of_a_scale():
    p = scale_piece(0, "major")  # 8 quarters + a whole note at 120 qpm: 6 s, 11 notes
    f = metrics.features(p)
    assert f["pitch_range"] == 12 and f["notes_per_second"] == pytest.approx(11 / 6)
    assert f["ioi"] == pytest.approx(0.5)
    assert 1.0 < f["polyphony"] < 3.0
    h = metrics.pitch_class_histogram(p)
    assert h.sum() == pytest.approx(1.0) and h[1] == 0 and h[0] == pytest.approx(3 / 11)


def test_overlaps():
    assert metrics.histogram_overlap([0.5, 0.5], [0.5, 0.5]) == pytest.approx(1.0)
    assert metrics.histogram_overlap([1, 0], [0, 1]) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 200), rng.normal(10, 1, 200)
    assert metrics.kde_overlap(a, a) == pytest.approx(1.0, abs=1e-6) and metrics.kde_overlap(a, b) < 0.01
