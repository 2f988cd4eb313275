"""Tests for maia/encoding.py.

- grid music (real music21 corpus pieces and random note tables) round-trips exactly through tokens and
  through MIDI, and the corpus pieces match an independent reading of the score;
- performance MIDI (tests/midi_factory.py: tempo maps, sustain pedal, humanised ticks, odd resolutions,
  formats 0 and 1, drums) is read as a listener hears it, against expectations computed here from ticks;
- the token sequence is canonical (offs before ons, ascending pitch, dynamics only on change, waits split
  at max_wait); pitches fold by octaves; composer tokens; the decoder never raises;
- every kind of unusable file gives one InputError that names the file.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from helpers import assert_valid_piece
from midi_factory import DRUM_PITCHES, PIANO_PITCHES, KeyPress, Performance, performance

from maia.encoding import (
    Piece,
    bin_velocity,
    decode,
    decode_ids,
    encode,
    encode_ids,
    fold_pitches,
    pieces_from_music21,
    read,
    read_midi_bytes,
    transpose_ids,
    velocity_bins,
)
from maia.errors import InputError
from maia.vocab import EncodingConfig, Vocab

SPQ = 12
VOCAB = Vocab(composers=("bach", "mozart"))
CFG = VOCAB.config


# ---- independent expectations -------------------------------------------------------------------
def fold(p: int, lo: int, hi: int) -> int:
    while p < lo:
        p += 12
    while p > hi:
        p -= 12
    return p


def heard(rows):
    """(onset, end, pitch) rows -> what one piano plays, sorted by (onset, pitch): of strikes of one key
    at one time the longest sounds, and a sounding key is cut where it is struck again."""
    by_key: dict[int, dict] = {}
    for s, e, p in rows:
        ends = by_key.setdefault(p, {})
        ends[s] = max(ends.get(s, e), e)
    out = []
    for p, ends in by_key.items():
        starts = sorted(ends)
        for k, s in enumerate(starts):
            e = ends[s] if k + 1 == len(starts) else min(ends[s], starts[k + 1])
            out.append((s, e, p))
    return sorted(out, key=lambda r: (r[0], r[2]))


def music21_notes(score, cfg=CFG):
    """The (onset, end, pitch) grid rows a listener hears in a music21 score; asserts it is grid-exact."""
    from music21 import note

    rows = []
    for part in score.parts:
        for n in part.flatten().stripTies().notes:
            if isinstance(n, note.Unpitched):
                continue
            on = Fraction(n.offset) * SPQ
            end = (Fraction(n.offset) + Fraction(n.quarterLength)) * SPQ
            assert on.denominator == 1 and end.denominator == 1, f"{n} is off the grid"
            end = max(int(end), int(on) + 1)  # a grace note (no length) sounds for one step
            rows += [(int(on), end, fold(p.midi, cfg.pitch_lo, cfg.pitch_hi)) for p in n.pitches]
    return heard(rows)


def as_rows(piece: Piece):
    return [(int(s), int(s + d), int(p)) for s, d, p, _ in piece.notes]


def assert_canonical(tokens: list[str], cfg=CFG):
    """Inside a time step: offs, then ons, each ascending; a v token only right before a note-on and
    only when the level changes; runs of waits are full max_wait tokens but the last."""
    level, step, waits = None, [], []

    def close_step():
        kinds = [(t.startswith("p"), int(t.lstrip("endp"))) for t in step]
        assert kinds == sorted(set(kinds)), f"step not canonical: {step}"

    body = [t for t in tokens if not t.startswith("<")]
    for k, t in enumerate(body):
        if t.startswith("wait"):
            if not waits:
                close_step()
                step = []
            waits.append(int(t[4:]))
            continue
        if waits:
            assert all(w == cfg.max_wait for w in waits[:-1]) and 1 <= waits[-1] <= cfg.max_wait, waits
            waits = []
        if t.startswith("v"):
            assert body[k + 1].startswith("p") and t != level, f"redundant or stray {t}"
            level = t
        else:
            assert not (t.startswith("p") and level is None), "first note-on without dynamics"
            step.append(t)
    close_step()


def random_piece(seed: int, n: int = 300, lo: int = 21, hi: int = 108) -> Piece:
    """Random grid-exact notes that respect the Piece invariants (a key is struck again at the earliest
    on the step it is released), with long gaps so that waits must split."""
    rng = np.random.default_rng(seed)
    rows, free_at, t = [], {}, 0
    for _ in range(n):
        t += int(rng.choice([0, 0, 0, 1, 2, 3, 4, 6, 12, 47, 48, 49, 100, 333]))
        p = int(rng.integers(lo, hi + 1))
        if free_at.get(p, 0) > t:
            continue
        d = int(rng.choice([1, 2, 3, 4, 6, 12, 24, 50, 97, 500]))
        rows.append((t, d, p, int(rng.integers(1, 128))))
        free_at[p] = t + d
    notes = np.array(rows, np.int64)
    notes = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
    ts = [(4, 4), (3, 4), (6, 8), (7, 8)][seed % 4]
    return Piece(notes, SPQ, float(rng.uniform(30, 240)), ts)


def assert_token_round_trip(piece: Piece, vocab=VOCAB, composer="bach"):
    ids = encode_ids(piece, vocab, composer)
    back = decode_ids(ids, vocab)
    np.testing.assert_array_equal(back.notes[:, :3], piece.notes[:, :3])
    np.testing.assert_array_equal(
        velocity_bins(back.notes[:, 3], vocab.config.n_velocity_bins),
        velocity_bins(piece.notes[:, 3], vocab.config.n_velocity_bins),
    )
    np.testing.assert_array_equal(encode_ids(back, vocab, composer), ids)
    tokens = encode(piece, vocab, composer)
    assert tokens == vocab.tokens(ids) and encode(decode(tokens, vocab), vocab, composer) == tokens
    assert_canonical(tokens, vocab.config)
    return ids


# ---- grid music: the real music21 corpus ---------------------------------------------------------
CORPUS = {  # corpus name -> has (8th or 16th) triplets
    "bach/bwv66.6": False,
    "mozart/k545/movement1_exposition": False,
    "joplin/maple_leaf_rag": False,
    "beethoven/opus18no1/movement3": False,  # string quartet, with grace notes
    "haydn/opus74no1/movement3": True,
    "chopin/mazurka06-2": True,  # Humdrum kern
}


@pytest.fixture(scope="module", params=list(CORPUS))
def corpus_piece(request):
    from music21 import corpus

    score = corpus.parse(request.param)
    return request.param, score, pieces_from_music21(score)[0]


def test_music21_piece_matches_score(corpus_piece):
    name, score, piece = corpus_piece
    assert as_rows(piece) == music21_notes(score)
    assert_valid_piece(piece)
    if CORPUS[name]:  # triplets land between 16ths, exactly
        assert (piece.notes[:, 0] % 3 != 0).any()


def test_corpus_token_round_trip(corpus_piece):
    assert_token_round_trip(corpus_piece[2])


def test_corpus_midi_round_trip(corpus_piece, tmp_path):
    piece = corpus_piece[2]
    back = read(piece.write_midi(tmp_path / "piece.mid"))
    np.testing.assert_array_equal(back.notes, piece.notes)  # velocities too: MIDI keeps them exactly
    assert back.tempo_qpm == pytest.approx(piece.tempo_qpm, abs=1e-3)
    assert back.time_signature == piece.time_signature


# ---- grid music: random note tables --------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_random_table_round_trip(seed, tmp_path):
    piece = random_piece(seed)
    assert_valid_piece(piece)
    assert_token_round_trip(piece)
    back = read(piece.write_midi(tmp_path / "random.mid"))
    np.testing.assert_array_equal(back.notes, piece.notes)
    assert back.time_signature == piece.time_signature
    assert back.tempo_qpm == pytest.approx(piece.tempo_qpm, abs=1e-3)


@pytest.mark.parametrize(
    "cfg",
    [EncodingConfig(max_wait=16, n_velocity_bins=32), EncodingConfig(pitch_lo=36, pitch_hi=96, n_velocity_bins=1)],
)
def test_random_table_round_trip_other_configs(cfg):
    vocab = Vocab(cfg)
    for seed in range(4):
        assert_token_round_trip(random_piece(seed, lo=cfg.pitch_lo, hi=cfg.pitch_hi), vocab, None)


# ---- performance MIDI -----------------------------------------------------------------------------
PERF_CASES = {
    "96tpq-format0": dict(seed=1, tpq=96, fmt=0, n_tracks=1),
    "384tpq-format1-2parts": dict(seed=2, tpq=384, fmt=1, n_tracks=2),
    "960tpq-format1-3parts": dict(seed=3, tpq=960, fmt=1, n_tracks=3),
    "1000tpq-format0-2parts": dict(seed=4, tpq=1000, fmt=0, n_tracks=2),
    "480tpq-not-humanised": dict(seed=5, tpq=480, fmt=1, n_tracks=2, humanise=False),
    "480tpq-format0-no-pedal": dict(seed=6, tpq=480, fmt=0, n_tracks=3, pedal=False),
}


def heard_performance(perf: Performance):
    """(onset, end, pitch) in grid steps (exact fractions) from the key presses and pedal spans: a key
    released while its part's pedal is down sounds until the pedal comes up or the key is struck again."""
    rows = []
    for n in perf.notes:
        end = n.end
        for track, channel, down, up in perf.pedals:
            if (track, channel) == (n.track, n.channel) and down < n.end < up:
                end = up
        rows.append((Fraction(n.start * SPQ, perf.tpq), Fraction(end * SPQ, perf.tpq), n.pitch))
    return heard(rows)


@pytest.mark.parametrize("case", list(PERF_CASES))
def test_performance_midi_is_read_as_heard(case, tmp_path):
    perf = performance(**PERF_CASES[case])
    expected = heard_performance(perf)
    got = read(perf.write(tmp_path / f"{case}.mid"))
    assert_valid_piece(got)
    assert len(got) == len(expected)
    assert (got.notes[:, 2] >= PIANO_PITCHES[0]).all(), "drum notes leaked into the piece"
    unused: dict[int, list] = {}
    for s, d, p, _ in got.notes:
        unused.setdefault(int(p), []).append((int(s), int(d)))
    onsets_ok = durations_ok = nearest = 0
    for s, e, p in expected:  # nearest unused returned note of the same key, within one grid step
        cands = [r for r in unused.get(p, []) if abs(r[0] - s) <= 1]
        if not cands:
            continue
        r = min(cands, key=lambda r: abs(r[0] - s))
        unused[p].remove(r)
        onsets_ok += 1
        nearest += abs(r[0] - s) <= Fraction(1, 2)  # quantised to the nearest step, not floored
        durations_ok += abs(r[1] - (e - s)) <= 1
    assert onsets_ok >= 0.99 * len(expected) and nearest >= 0.99 * len(expected)
    assert durations_ok >= 0.99 * len(expected)
    # the tempo map as one tempo: the last note starts when the map starts it
    end_tick = max(n.start for n in perf.notes)
    marks = [*perf.tempos, (end_tick, 0.0)]
    minutes = sum((min(b, end_tick) - min(a, end_tick)) / perf.tpq / q for (a, q), (b, _) in itertools.pairwise(marks))
    assert got.tempo_qpm == pytest.approx(end_tick / perf.tpq / minutes, rel=1e-3)
    assert got.time_signature == perf.time_signature
    if perf.pedals:  # the pedal really lengthened notes, so the test above exercised it
        key_up = heard(
            [(Fraction(n.start * SPQ, perf.tpq), Fraction(n.end * SPQ, perf.tpq), n.pitch) for n in perf.notes]
        )
        longer = sum(e1 - e0 > 2 for (_, e0, _), (_, e1, _) in zip(key_up, expected, strict=True))
        assert longer > 0.1 * len(expected)


def test_performance_fixture_reads_the_same_from_bytes(performance_midi):
    a = read(performance_midi)
    b = read_midi_bytes(performance_midi.read_bytes())
    np.testing.assert_array_equal(a.notes, b.notes)
    assert len(a) > 100 and (a.tempo_qpm, a.time_signature) == (b.tempo_qpm, b.time_signature)


# ---- canonical tokens -----------------------------------------------------------------------------
def test_canonical_tokens_exact():
    # Rows out of order on purpose; at step 12 key 60 ends and is struck again.
    notes = np.array(
        [(12, 6, 67, 100), (0, 12, 64, 100), (0, 12, 60, 100), (12, 12, 62, 40), (12, 6, 60, 100), (120, 1, 60, 100)],
        np.int64,
    )
    assert encode(Piece(notes), VOCAB) == [
        "<composer:unknown>", "<start>", "v7", "p60", "p64", "wait12", "endp60", "endp64",
        "p60", "v3", "p62", "v7", "p67", "wait6", "endp60", "endp67", "wait6", "endp62",
        "wait48", "wait48", "p60", "wait1", "endp60", "<end>",
    ]  # fmt: skip


def test_dynamics_token_only_on_change():
    vel = [80, 81, 100, 100, 20, 80]  # levels 5 5 6 6 1 5 of 8
    notes = np.array([(4 * i, 2, 60 + i, v) for i, v in enumerate(vel)], np.int64)
    tokens = encode(Piece(notes), VOCAB)
    assert [t for t in tokens if t[0] == "v"] == ["v6", "v7", "v2", "v6"]
    back = decode(tokens, VOCAB).notes[:, 3]
    assert list(back) == [bin_velocity(level, 8) for level in (5, 5, 6, 6, 1, 5)]


@pytest.mark.parametrize(("max_wait", "gap", "waits"), [
    (48, 1, [1]), (48, 48, [48]), (48, 49, [48, 1]), (48, 96, [48, 48]), (48, 100, [48, 48, 4]),
    (16, 16, [16]), (16, 40, [16, 16, 8]), (1, 3, [1, 1, 1]),
])  # fmt: skip
def test_waits_split_at_max_wait(max_wait, gap, waits):
    vocab = Vocab(EncodingConfig(max_wait=max_wait))
    piece = Piece(np.array([(gap, gap, 60, 64)], np.int64))  # silence of `gap`, then a note of `gap`
    tokens = encode(piece, vocab)
    w = [f"wait{x}" for x in waits]
    assert tokens == ["<composer:unknown>", "<start>", *w, "v5", "p60", *w, "endp60", "<end>"]
    np.testing.assert_array_equal(decode(tokens, vocab).notes[:, :3], piece.notes[:, :3])


def test_levels_decode_to_the_centres_of_their_bins_and_mf_by_default():
    """Of 8 levels each spans 16 velocities: level k decodes to 16k + 8, the centre. Music with no dynamics token
    plays at level 6 of 8 (v6: velocity 88, mezzo-forte)."""
    assert [bin_velocity(k, 8) for k in range(8)] == [8, 24, 40, 56, 72, 88, 104, 120]
    assert bin_velocity(0, 1) == 64 and bin_velocity(1, 2) == 96
    plain = decode(["<composer:unknown>", "<start>", "p60", "wait12", "endp60", "<end>"], VOCAB)
    assert plain.notes[:, 3].tolist() == [88]


def test_velocity_bins_invert_bin_velocity():
    for n in range(1, 128):
        levels = np.arange(n)
        centres = np.array([bin_velocity(k, n) for k in levels])
        assert ((centres >= 1) & (centres <= 127)).all()
        np.testing.assert_array_equal(velocity_bins(centres, n), levels)
        bins = velocity_bins(np.arange(1, 128), n)
        assert (np.diff(bins) >= 0).all() and set(bins) == set(levels)


# ---- pitch folding and transposition ---------------------------------------------------------------
@pytest.mark.parametrize(("lo", "hi"), [(21, 108), (36, 96), (48, 59), (0, 127)])
def test_fold_pitches_by_octaves(lo, hi):
    p = np.arange(128)
    f = fold_pitches(p, lo, hi)
    assert list(f) == [fold(int(x), lo, hi) for x in p]
    assert ((f >= lo) & (f <= hi)).all() and (f % 12 == p % 12).all()


def test_read_folds_pitches_into_config_range(tmp_path):
    cfg = EncodingConfig(pitch_lo=36, pitch_hi=96)
    pitches = [0, 20, 35, 36, 60, 96, 97, 120, 127]
    path = Piece(np.array([(6 * i, 3, p, 90) for i, p in enumerate(pitches)], np.int64)).write_midi(tmp_path / "x.mid")
    piece = read(path, cfg)
    assert list(piece.notes[:, 2]) == [fold(p, 36, 96) for p in pitches]
    assert_token_round_trip(piece, Vocab(cfg))


def test_encode_folds_into_a_narrower_vocabulary():
    # Read with the full piano range, encoded for 36..96: keys 30 and 42 both fold onto 42 at step 0.
    piece = Piece(np.array([(0, 12, 30, 80), (0, 24, 42, 80), (30, 6, 100, 80)], np.int64))
    vocab = Vocab(EncodingConfig(pitch_lo=36, pitch_hi=96))
    ids = encode_ids(piece, vocab)
    back = decode_ids(ids, vocab)
    assert as_rows(back) == [(0, 24, 42), (30, 36, 88)]  # the longer strike of key 42 sounds
    np.testing.assert_array_equal(encode_ids(back, vocab), ids)


@pytest.mark.parametrize("cfg", [EncodingConfig(), EncodingConfig(pitch_lo=36, pitch_hi=96)])
@pytest.mark.parametrize("k", [-30, -13, -1, 1, 5, 12, 30])
def test_transpose_ids_folds_by_octaves(cfg, k):
    vocab = Vocab(cfg, composers=("bach",))
    lo, hi = cfg.pitch_lo, cfg.pitch_hi
    pitches = [lo, lo + 1, lo + 11, 60, 66, hi - 11, hi - 1, hi]  # one per onset: folding cannot collide
    piece = Piece(np.array([(5 * i, 7, p, 20 + 10 * i) for i, p in enumerate(pitches)], np.int64))
    ids = encode_ids(piece, vocab, "bach")
    moved = transpose_ids(ids, k, vocab)
    back = decode_ids(moved, vocab)
    assert [(s, e) for s, e, _ in as_rows(back)] == [(s, e) for s, e, _ in as_rows(piece)]
    assert list(back.notes[:, 2]) == [fold(p + k, lo, hi) for p in pitches]
    is_note = np.isin(vocab.tokens(ids), [f"{x}{p}" for x in ("p", "endp") for p in range(lo, hi + 1)])
    np.testing.assert_array_equal(moved[~is_note], ids[~is_note])  # waits, dynamics, specials stay
    assert back.composer == "bach"
    np.testing.assert_array_equal(transpose_ids(ids, 0, vocab), ids)


# ---- composers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "stored", "token"), [
    ("bach", None, "<composer:bach>"),
    ("BACH ", None, "<composer:bach>"),
    (None, "Mozart", "<composer:mozart>"),
    ("bach", "mozart", "<composer:bach>"),  # the argument wins over the piece's own
    ("Schoenberg", None, "<composer:unknown>"),
    (None, None, "<composer:unknown>"),
])  # fmt: skip
def test_composer_token(given, stored, token):
    piece = Piece(np.array([(0, 3, 60, 64)], np.int64), composer=stored)
    tokens = encode(piece, VOCAB, given)
    assert tokens[0] == token and tokens.count(token) == 1
    assert decode(tokens, VOCAB).composer == token[len("<composer:") : -1]


def test_stray_composer_token_carries_no_music():
    tokens = ["<composer:bach>", "<start>", "v5", "p60", "<composer:mozart>", "wait3", "endp60", "<end>"]
    piece = decode(tokens, VOCAB)
    assert piece.composer == "bach" and as_rows(piece) == [(0, 3, 60)]


# ---- the decoder never raises --------------------------------------------------------------------------
GARBAGE = {  # token strings -> the (onset, end, pitch) rows they decode to
    "nothing": ([], []),
    "only pads": (["<pad>"] * 3, []),
    "only dynamics": (["v3", "v8"], []),
    "only waits": (["wait48"] * 3, []),
    "endp without p": (["endp60", "wait2", "endp61"], []),
    "repeated p": (["p60", "p60", "p60"], [(0, 1, 60)]),
    "no <end>": (["<start>", "p60", "wait5"], [(0, 5, 60)]),
    "<end> before music": (["<end>", "p60", "wait5", "endp60", "<end>", "p62", "wait1"], [(0, 5, 60)]),
    "p endp p at one step": (["p60", "endp60", "p60", "wait4", "endp60"], [(0, 4, 60)]),
    "re-struck key": (["wait2", "endp61", "p61", "wait3", "p61", "wait2", "endp61"], [(2, 5, 61), (5, 7, 61)]),
    "left open for long": (["p60", *["wait48"] * 20], [(0, CFG.max_open_steps, 60)]),
    "unknown strings": (["foo", "p60", "wait2", "<composer:nobody>", "bar"], [(0, 2, 60)]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(GARBAGE))
def test_decode_garbage(case):
    tokens, rows = GARBAGE[case]
    piece = decode(tokens, VOCAB)
    assert_valid_piece(piece)
    assert as_rows(piece) == rows


def test_decode_never_raises_on_random_ids():
    rng = np.random.default_rng(0)
    n_vocab = len(VOCAB)
    few_keys = VOCAB.ids(["p60", "p61", "endp60", "endp61", "wait1", "wait2", "v2", "v7", "<end>"])
    wait_steps = np.zeros(n_vocab + 10, np.int64)  # steps each id advances time by
    wait_steps[VOCAB.wait_offset + 1 : VOCAB.wait_offset + CFG.max_wait + 1] = np.arange(1, CFG.max_wait + 1)
    for k in range(200):
        if k % 2:  # uniform over the vocabulary, plus ids it does not have
            ids = rng.integers(0, n_vocab + 10, rng.integers(0, 400))
        else:  # two keys struck, re-struck and released at random: the collisions a model makes
            ids = rng.choice(few_keys, rng.integers(0, 400))
        piece = decode_ids(ids, VOCAB)
        assert_valid_piece(piece)
        assert piece.end_step <= wait_steps[ids].sum() + 1  # nothing outlives the sequence's own time
        # Decoding is a projection: what it returns encodes and decodes to itself.
        np.testing.assert_array_equal(decode_ids(encode_ids(piece, VOCAB), VOCAB).notes, piece.notes)


def test_decode_carries_tempo_and_time_signature():
    ids = encode_ids(Piece(np.array([(0, 3, 60, 64)], np.int64)), VOCAB)
    piece = decode_ids(ids, VOCAB, tempo_qpm=77.0, time_signature=(6, 8))
    assert (piece.tempo_qpm, piece.time_signature) == (77.0, (6, 8))


# ---- MIDI metadata ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("qpm", "kept"), [(5.0, 10.0), (10.0, 10.0), (600.0, 600.0), (1000.0, 1000.0), (3000.0, 1000.0)])
def test_file_tempos_are_kept_within_10_to_1000_qpm(qpm, kept, tmp_path):
    piece = Piece(np.array([(0, 12, 60, 64)], np.int64), SPQ, qpm)
    assert read(piece.write_midi(tmp_path / "t.mid")).tempo_qpm == pytest.approx(kept, abs=1e-3)


def test_the_length_limit_is_inclusive(tmp_path):
    """A piece of exactly max_quarters quarter notes is read; a quarter note more is refused."""
    path = Piece(np.array([(0, 12 * 16, 60, 64)], np.int64)).write_midi(tmp_path / "x.mid")  # 16 quarters
    assert len(read(path, max_quarters=16)) == 1
    longer = Piece(np.array([(0, 12 * 17, 60, 64)], np.int64)).write_midi(tmp_path / "y.mid")
    with pytest.raises(InputError, match="17 quarter notes, over the limit of 16"):
        read(longer, max_quarters=16)


@pytest.mark.parametrize(
    ("qpm", "ts"), [(87.5, (6, 8)), (40.0, (3, 4)), (200.0, (5, 4)), (120.0, None), (33.3, (7, 8))]
)
def test_tempo_and_time_signature_survive_midi(qpm, ts, tmp_path):
    piece = Piece(np.array([(0, 12, 60, 64), (12, 24, 64, 90)], np.int64), SPQ, qpm, ts)
    back = read(piece.write_midi(tmp_path / "meta.mid"))
    assert back.tempo_qpm == pytest.approx(qpm, abs=1e-3) and back.time_signature == ts
    np.testing.assert_array_equal(back.notes, piece.notes)


# ---- unusable files -------------------------------------------------------------------------------
def _header(fmt=1, ntrk=1, division=480) -> bytes:
    return (
        b"MThd"
        + (6).to_bytes(4, "big")
        + fmt.to_bytes(2, "big")
        + ntrk.to_bytes(2, "big")
        + division.to_bytes(2, "big")
    )


END_TRACK = b"MTrk" + (4).to_bytes(4, "big") + b"\x00\xff\x2f\x00"
VALID = Piece(np.array([(i * 3, 3, 60 + i % 12, 80) for i in range(40)], np.int64)).to_midi_bytes()
DRUMS_ONLY = Performance(
    480, 1, [], drums=[KeyPress(480 * i, 480 * i + 120, DRUM_PITCHES[i % 4], 100, 0, 9) for i in range(8)]
).to_midi_bytes()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))

BAD_FILES = {  # file name -> (content, read() keyword arguments, part of the message)
    "missing.mid": (None, {}, "no such file"),
    "folder.mid": ("dir", {}, "no such file"),
    "empty.mid": (b"", {}, "empty"),
    "text.mid": (b"C D E F G A B c\n", {}, "not a MIDI file"),
    "notes.txt": (b"C D E F G A B c\n", {}, "unsupported file type"),
    "picture.mid": (PNG, {}, "not a MIDI file"),
    "picture.png": (PNG, {}, "unsupported file type"),
    "truncated.mid": (VALID[: len(VALID) // 2], {}, "truncated"),
    "short_header.mid": (VALID[:10], {}, "truncated"),
    "header_only.mid": (_header(ntrk=0), {}, "no notes"),
    "format2.mid": (_header(fmt=2) + END_TRACK, {}, "format 2"),
    "smpte.mid": (_header(division=0xE728) + END_TRACK, {}, "SMPTE"),
    "zero_division.mid": (_header(division=0) + END_TRACK, {}, "0 ticks"),
    "riff.mid": (b"RIFF" + (len(VALID) + 4).to_bytes(4, "little") + b"RMID" + VALID, {}, "RIFF"),
    "large.mid": (VALID, {"max_bytes": len(VALID) - 1}, "limit"),
    "drums_only.mid": (DRUMS_ONLY, {}, "no notes"),
    "broken.musicxml": (b"<?xml version='1.0'?><score-partwise><part", {}, "cannot parse score"),
    "silence.abc": (b"X:1\nT:Silence\nM:4/4\nL:1/4\nK:C\nz4|z4|\n", {}, "no notes"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_read_rejects_unusable_files(name, tmp_path):
    content, kwargs, message = BAD_FILES[name]
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as err:
        read(path, **kwargs)
    text = str(err.value)
    assert text.startswith(f"{name}: ") and message in text and "\n" not in text
    assert str(tmp_path) not in text  # the file's name, never its folder (a server's upload folder)


def test_valid_file_under_the_limit_reads(tmp_path):
    path = tmp_path / "ok.mid"
    path.write_bytes(VALID)
    assert len(read(path, max_bytes=len(VALID))) == 40


def test_read_midi_bytes_names_its_source():
    with pytest.raises(InputError, match=r"upload\.mid: not a MIDI file"):
        read_midi_bytes(PNG, name="upload.mid")
