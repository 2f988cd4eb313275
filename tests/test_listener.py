"""Tests for maia/listener.py, the listener measures, on hand-made pieces whose answers are known.

Pieces are at 120 qpm and 12 steps per quarter unless said otherwise: 24 grid steps per second."""

import math

import numpy as np
import pytest

from maia import listener
from maia.encoding import Piece
from maia.vocab import Vocab

SPS = 24  # grid steps per second at 120 qpm
VOCAB = Vocab()


def piece(notes, qpm: float = 120.0) -> Piece:
    """A Piece from (onset, duration, pitch, velocity) rows, sorted as Piece requires."""
    n = np.array(notes, np.int64).reshape(-1, 4)
    return Piece(n[np.lexsort((n[:, 2], n[:, 0]))], 12, qpm)


def melody(pitches, step: int = 6, start: int = 0, bass=None):
    """One note per onset every ``step`` steps; with ``bass``, a lower note struck with each."""
    rows = [(start + i * step, step, p, 80) for i, p in enumerate(pitches)]
    if bass is not None:
        rows += [(start + i * step, step, b, 60) for i, b in enumerate(bass)]
    return rows


# ---- overlap of histograms ----------------------------------------------------------------------------
def test_overlap_is_one_for_identical_and_zero_for_disjoint_distributions():
    a = piece(melody([60, 62, 64, 65, 67]))
    low = piece(melody([40, 41, 43]))
    high = piece(melody([80, 82, 84, 86]))
    h = listener.histogram([a], "pitch")
    assert h.sum() == pytest.approx(1.0)
    assert listener.overlap(h, h) == pytest.approx(1.0)
    assert listener.overlap(listener.histogram([low], "pitch"), listener.histogram([high], "pitch")) == 0.0
    # The same notes at another tempo: identical pitches, disjoint durations (0.25 s against 1 s).
    slow = piece(melody([60, 62, 64, 65, 67]), qpm=30.0)
    assert listener.overlap(listener.histogram([a], "pitch"), listener.histogram([slow], "pitch")) == pytest.approx(1.0)
    assert listener.overlap(listener.histogram([a], "duration"), listener.histogram([slow], "duration")) == 0.0


def test_overlap_is_the_sum_of_binwise_minima_and_symmetric():
    a = piece(melody([60, 60, 62, 64]))  # 60: 1/2, 62: 1/4, 64: 1/4
    b = piece(melody([60, 62, 62, 67]))  # 60: 1/4, 62: 1/2, 67: 1/4
    ha, hb = listener.histogram([a], "pitch"), listener.histogram([b], "pitch")
    assert listener.overlap(ha, hb) == pytest.approx(0.5)  # min(1/2, 1/4) + min(1/4, 1/2)
    assert listener.overlap(hb, ha) == pytest.approx(listener.overlap(ha, hb))
    # Pooled over two pieces: the histogram of all their notes together (8 notes: 60 x3, 62 x3, 64, 67).
    both = listener.histogram([a, b], "pitch")
    assert both[list(listener.BINS["pitch"]).index(59.5)] == pytest.approx(3 / 8)
    assert math.isnan(listener.overlap(ha, np.zeros_like(ha)))


def test_distribution_overlaps_of_a_set_with_itself_are_one():
    rng = np.random.default_rng(0)
    pieces = [piece([(int(t), int(d), int(p), int(v)) for t, d, p, v in
                     zip(np.sort(rng.integers(0, 200, 30)), rng.integers(1, 30, 30), rng.integers(40, 60, 30),
                         rng.integers(20, 120, 30), strict=True)]) for _ in range(3)]
    pieces = [Piece(p.notes[np.unique(p.notes[:, [0, 2]], axis=0, return_index=True)[1]], 12, 120.0) for p in pieces]
    prompts = [piece(melody([60, 64, 67]))] * 3  # one centre, 64: around it 40..59 and 64..83 stay apart
    same = listener.distribution_overlaps(pieces, pieces, prompts)
    assert set(same) == {*listener.DISTRIBUTIONS, "mean"}
    assert all(same[k] == pytest.approx(1.0) for k in same)
    # Up two octaves (pitches 40..59 -> 64..83): no pitch in common, but the same rhythm, dynamics and chords.
    up = [Piece(p.notes + np.array([0, 0, 24, 0]), 12, 120.0) for p in pieces]
    moved = listener.distribution_overlaps(up, pieces, prompts)
    assert moved["pitch"] == 0.0 and moved["pitch_around_centre"] == 0.0
    for k in ("ioi", "duration", "velocity", "chord_size"):
        assert moved[k] == pytest.approx(1.0), k
    assert moved["mean"] == pytest.approx(4 / 6)


def test_pitch_around_centre_follows_each_prompt():
    """A continuation a fifth above its prompt's median matches another a fifth above its own prompt."""
    a, b = piece(melody([67, 67])), piece(melody([79, 79]))
    pa, pb = piece(melody([58, 60, 62])), piece(melody([72]))
    got = listener.distribution_overlaps([a], [b], [pa])
    assert got["pitch"] == 0.0 and got["pitch_around_centre"] == 0.0  # both measured from 60
    cross = listener.overlap(listener.histogram([a], "pitch_around_centre", [60.0]),
                             listener.histogram([b], "pitch_around_centre", [listener.centre(pb)]))
    assert cross == pytest.approx(1.0)
    assert listener.centre(pa) == 60.0 and listener.centre(Piece()) == 60.0


# ---- top line and motifs -------------------------------------------------------------------------------
def test_top_line_is_the_highest_note_of_each_onset():
    notes = np.array([(12, 6, 48, 60), (0, 12, 60, 80), (0, 12, 67, 80), (12, 6, 72, 80), (0, 12, 64, 80),
                      (24, 6, 55, 80)], np.int64)  # not in time order
    assert listener.top_line(notes).tolist() == [67, 72, 55]
    assert listener.top_line(np.zeros((0, 4), np.int64)).tolist() == []


PROMPT_TUNE = [60, 62, 64, 65, 67, 65, 64, 62, 60, 67]  # intervals 2 2 1 2 -2 -1 -2 -2 7


def test_motif_recurrence_is_one_for_the_prompts_tune_transposed():
    # The prompt's tune above a bass; the continuation plays it a fourth higher, twice as slow, over
    # another bass: only the top line's intervals count.
    prompt = piece(melody(PROMPT_TUNE, 6, bass=[36, 43] * 5))
    cont = piece(melody([p + 5 for p in PROMPT_TUNE], 12, bass=[41, 29, 45, 33, 38] * 2))
    assert listener.motif_recurrence(prompt, cont) == pytest.approx(1.0)
    assert listener.motif_recurrence(prompt.notes, cont.notes) == pytest.approx(1.0)  # arrays work too


def test_motif_recurrence_is_zero_for_an_unrelated_tune():
    prompt = piece(melody(PROMPT_TUNE, 6, bass=[36, 43] * 5))
    cont = piece(melody([60, 67, 55, 72, 50, 74, 49], 6))  # leaps the prompt never makes
    assert listener.motif_recurrence(prompt, cont) == 0.0


def test_motif_recurrence_counts_the_share_of_motifs():
    prompt = piece(melody(PROMPT_TUNE, 6))
    # Motifs (2, 2, 1) from the prompt, then (2, 1, 9) and (1, 9, -1), which it never plays: 1 of 3.
    cont = piece(melody([70, 72, 74, 75, 84, 83], 6))
    assert listener.motifs(cont.notes) == [(2, 2, 1), (2, 1, 9), (1, 9, -1)]
    assert listener.motif_recurrence(prompt, cont) == pytest.approx(1 / 3)
    assert math.isnan(listener.motif_recurrence(prompt, piece(melody([60, 62, 64]))))  # no 4-note motif


# ---- collapse ------------------------------------------------------------------------------------------
def test_longest_two_pitch_run_finds_a_five_second_trill():
    before = melody([72, 74, 76, 77, 79, 81, 83, 84], 6)  # 2 s of a scale, a new pitch each onset
    trill = melody([60, 62] * 20, 3, start=48)  # 60 and 62 alternating every 1/8 s for 5 s
    after = melody([71, 69, 67, 65, 64, 62, 60, 59], 6, start=48 + 5 * SPS)  # 2 s of other music
    p = piece(before + trill + after)
    assert listener.longest_two_pitch_run(p) == pytest.approx(5.0)
    # The same trill ending the piece runs to the end of its last note.
    assert listener.longest_two_pitch_run(piece(before + trill)) == pytest.approx(5.0)
    # Chords of the two pitches count as using two pitches; a piece with a new pitch each onset has runs
    # of two onsets only (a quarter second here).
    assert listener.longest_two_pitch_run(piece(melody(list(range(40, 80)), 6))) == pytest.approx(0.5)
    assert listener.longest_two_pitch_run(Piece()) == 0.0


def test_longest_two_pitch_run_is_measured_in_seconds():
    trill = piece(melody([60, 62] * 20, 3))  # 120 steps: 5 s at 120 qpm, 10 s at 60 qpm
    assert listener.longest_two_pitch_run(trill) == pytest.approx(5.0)
    assert listener.longest_two_pitch_run(Piece(trill.notes, 12, 60.0)) == pytest.approx(10.0)


def test_distinct_pitches_per_window():
    first = melody([60, 62] * 20, 6)  # 0-10 s: two pitches
    second = melody([60, 62, 64, 65, 67] * 8, 6, start=10 * SPS)  # 10-20 s: five
    tail = melody([70, 71, 72, 73, 74, 75, 76, 77] * 2, 6, start=20 * SPS)  # 20-24 s: not a whole window
    assert listener.distinct_pitches_per_window(piece(first + second + tail)) == pytest.approx(3.5)
    assert listener.distinct_pitches_per_window(piece(first + second + tail), seconds=5.0) == pytest.approx(
        (2 + 2 + 5 + 5) / 4)
    assert listener.distinct_pitches_per_window(piece(melody([60, 64, 67, 60], 24))) == 3.0  # shorter: one window
    assert math.isnan(listener.distinct_pitches_per_window(Piece()))


def test_long_notes_counts_notes_over_four_seconds():
    p = piece([(0, 4 * SPS + 12, 48, 80),  # 4.5 s
               (0, 4 * SPS, 60, 80),  # exactly 4 s: not longer
               (24, 6 * SPS, 64, 80),  # 6 s
               (30, SPS, 67, 80)])
    assert listener.long_notes(p) == 2
    assert listener.long_notes(Piece(p.notes, 12, 60.0)) == 3  # at half the tempo the 4 s note lasts 8 s
    assert listener.long_notes(p, seconds=1.0) == 3
    assert listener.long_notes(Piece()) == 0


def test_unreleased_notes_counts_keys_still_down():
    ids = VOCAB.ids(["<composer:unknown>", "<start>", "v5", "p60", "p64", "wait12", "endp60", "wait12", "endp64",
                     "p67", "wait12"])
    assert listener.unreleased_notes(ids, VOCAB) == 1  # 67 is never released
    assert listener.unreleased_notes(ids + VOCAB.ids(["endp67"]), VOCAB) == 0
    # A note-off after <end> is not part of the piece.
    assert listener.unreleased_notes(ids + VOCAB.ids(["<end>", "endp67"]), VOCAB) == 1
    # A key struck again while down is still one key; a release of a key never struck is harmless.
    again = VOCAB.ids(["p60", "wait6", "p60", "wait6", "endp60", "endp72", "p48", "p50"])
    assert listener.unreleased_notes(again, VOCAB) == 2
    assert listener.unreleased_notes([], VOCAB) == 0


def test_unreleased_notes_expands_merges():
    base = Vocab()
    merged = Vocab(merges=((base.stoi["p67"], base.stoi["wait12"]), (base.stoi["wait12"], base.stoi["endp67"])))
    held = [*merged.ids(["<start>", "v5", "p60", "wait12", "endp60"]), merged.base_size]  # <m:p67+wait12>
    assert listener.unreleased_notes(held, merged) == 1
    assert listener.unreleased_notes([*held, merged.base_size + 1], merged) == 0  # <m:wait12+endp67>


# ---- per piece and summary -----------------------------------------------------------------------------
def test_per_piece_measures_of_a_small_case():
    prompt = piece(melody(PROMPT_TUNE, 6, bass=[36, 43] * 5))
    # 5 s over a bass held throughout: the prompt's tune a fourth up (1 s), a 60/62 trill (2 s), a scale (2 s).
    bass = [(0, 5 * SPS, 36, 60)]
    tune = melody([p + 5 for p in PROMPT_TUNE[:4]], 6)
    trill = melody([60, 62] * 8, 3, start=24)
    scale = melody([64, 65, 67, 69, 71, 72, 74, 76], 6, start=72)
    cont = piece(bass + tune + trill + scale)
    ids = VOCAB.ids(["<start>", "v5", "p60", "wait3"])
    row = listener.per_piece(prompt, cont, ids, VOCAB)
    assert set(row) == set(listener.PER_PIECE)
    assert row["long_notes"] == 1  # the bass
    assert row["unreleased"] == 1
    assert row["pitch_range"] == 76 - 36
    assert row["notes_per_second"] == pytest.approx(len(cont) / 5.0)
    assert row["two_pitch_run"] == pytest.approx(2.0)  # the trill, to the scale's first onset
    assert row["motif_recurrence"] == pytest.approx(listener.motif_recurrence(prompt, cont))
    assert 0 < row["motif_recurrence"] < 1  # the tune's motif, then others
    assert row["distinct_pitches_10s"] == len(np.unique(cont.notes[:, 2]))  # shorter than 10 s: one window
    assert "unreleased" not in listener.per_piece(prompt, cont)  # no ids: not counted


def test_summarise_means_skip_missing_and_undefined_values():
    rows = [dict(notes_per_second=4.0, pitch_range=20, long_notes=0, motif_recurrence=0.5, key_kept=1.0,
                 two_pitch_run=1.0, distinct_pitches_10s=8.0, unreleased=2),
            dict(notes_per_second=6.0, pitch_range=30, long_notes=2, motif_recurrence=float("nan"), key_kept=0.0,
                 two_pitch_run=7.0, distinct_pitches_10s=4.0)]  # no motif; no ids, so no "unreleased"
    s = listener.summarise(rows)
    assert s == {"notes_per_second": 5.0, "pitch_range": 25.0, "long_notes": 1.0, "motif_recurrence": 0.5,
                 "key_kept": 0.5, "two_pitch_run": 4.0, "distinct_pitches_10s": 6.0, "unreleased": 2.0,
                 "two_pitch_run_max": 7.0}
    empty = listener.summarise([])
    assert all(math.isnan(v) for v in empty.values())
