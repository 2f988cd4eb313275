"""Fill-in-the-middle: the training window layout (training/data.py), the time-filling infill loop
(maia.generate.infill) and the cut-and-join of a piece (maia/infill.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import maia, random_piece, tiny_model

from maia.encoding import encode_ids
from maia.generate import SamplingConfig, infill, time_steps
from maia.infill import beats_to_steps, join_span, split_span
from maia.vocab import FIM_TOKENS, Vocab
from training.data import WindowDataset, fim_cut_points, step_boundary_tables

VOCAB = Vocab(composers=("bach", "chopin"), fim=True)


def test_fim_vocabulary_keeps_note_ids_and_adds_markers():
    plain = Vocab(composers=("bach", "chopin"))
    assert len(VOCAB) == len(plain) + 4 and VOCAB.itos[: len(plain)] == plain.itos
    assert [VOCAB.itos[i] for i in VOCAB.fim_ids] == list(FIM_TOKENS)
    assert set(VOCAB.fim_ids) <= set(VOCAB.special_ids)
    assert not any(VOCAB.is_composer(i) for i in VOCAB.fim_ids)
    assert Vocab.from_dict(VOCAB.to_dict()).itos == VOCAB.itos and "fim" not in plain.to_dict()


def test_fim_windows_are_a_rearranged_stretch_cut_at_time_steps():
    pieces = [encode_ids(random_piece(s), VOCAB, "bach") for s in range(4)]
    ds = WindowDataset(pieces, VOCAB, seq_len=128, transpose=False, fim_rate=1.0, seed=0)
    after, before = step_boundary_tables(VOCAB)
    seen = 0
    for k in range(len(ds)):
        x, y = ds[k]
        ids = np.r_[x.numpy(), y.numpy()[-1:]]
        ids = ids[ids != VOCAB.pad_id]
        if VOCAB.prefix_id not in ids:
            continue  # a window without two step boundaries stays as it is
        seen += 1
        p, s, m, e = (int(np.flatnonzero(ids == t)[0]) for t in VOCAB.fim_ids)
        assert ids[0] == VOCAB.composer_id("bach") and p == 1 and p < s < m < e == len(ids) - 1
        a, c, b = ids[p + 1 : s], ids[s + 1 : m], ids[m + 1 : e]
        body = np.r_[a, b, c]
        i, j = len(a), len(a) + len(b)
        # A B C is a contiguous stretch of the piece, cut where a time step begins
        piece = pieces[ds.windows[k][0]]
        start = ds.windows[k][1] + 1
        assert np.array_equal(body, piece[start : start + len(body)])
        cuts = set(fim_cut_points(body, after, before))
        assert i in cuts and j in cuts and len(b) > 0
        # B ends with the waits that bring time to C's first events
        assert time_steps(b, VOCAB) > 0 and after[b[-1]]
    assert seen >= len(ds) // 2


def test_fim_rate_zero_and_unknown_composer_share():
    pieces = [encode_ids(random_piece(s), VOCAB, "chopin") for s in range(6)]
    plain = WindowDataset(pieces, VOCAB, seq_len=64, transpose=False)
    assert all(VOCAB.prefix_id not in plain[k][0] for k in range(len(plain)))
    ds = WindowDataset(pieces, VOCAB, seq_len=64, transpose=False, unknown_composer=0.5, seed=1)
    heads = [int(ds[k][0][0]) for k in range(len(ds)) for _ in range(4)]
    share = heads.count(VOCAB.composer_id(None)) / len(heads)
    assert 0.3 < share < 0.7 and set(heads) == {VOCAB.composer_id(None), VOCAB.composer_id("chopin")}
    with pytest.raises(ValueError, match="fill-in-the-middle"):
        WindowDataset(pieces, replace(VOCAB, fim=False), fim_rate=0.5)


@pytest.fixture(scope="module")
def tiny_fim_model():
    return tiny_model("gpt", VOCAB, block_size=256, n_layer=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_infill_fills_the_span_exactly_and_keeps_the_rest(tiny_fim_model, seed):
    piece = random_piece(10 + seed)
    start, end = 96 + 12 * seed, 200 + 12 * seed
    span = split_span(piece, VOCAB, "bach", start, end, max_context=256, middle_tokens=120)
    whole = split_span(piece, VOCAB, "bach", start, end)
    assert time_steps(whole.prefix_ids, VOCAB) == start  # the prefix ends exactly where the gap begins
    assert span.prefix_ids[1:] == whole.prefix_ids[len(whole.prefix_ids) - len(span.prefix_ids) + 1 :]  # cropped
    assert span.suffix_ids == whole.suffix_ids[: len(span.suffix_ids)]
    assert len(span.prefix_ids) + len(span.suffix_ids) + 4 + 120 <= 256
    cfg = SamplingConfig(max_new_tokens=120, seed=seed, top_k=50)
    out = [t[0] for t in infill(tiny_fim_model, span.prefix_ids, span.suffix_ids, span.steps, cfg, VOCAB)]
    assert out[-1] == VOCAB.fim_end_id  # the middle ends once its time is filled
    middle = out[:-1]
    assert time_steps(middle, VOCAB) == end - start
    assert not set(middle) & set(VOCAB.special_ids) and VOCAB.end_id not in middle
    joined = join_span(span, out, VOCAB)
    n, m = piece.notes, joined.notes
    before, after = n[n[:, 0] < start], n[n[:, 0] >= end]
    new = m[(m[:, 0] >= start) & (m[:, 0] < end)]
    # every kept note is there with its onset, pitch and velocity; its duration only shortened where a
    # new note strikes its key again
    for note in np.r_[before, after]:
        hit = m[(m[:, 0] == note[0]) & (m[:, 2] == note[2])]
        assert len(hit) == 1 and hit[0, 3] == note[3] and hit[0, 1] <= note[1]
        if hit[0, 1] < note[1]:
            assert ((new[:, 2] == note[2]) & (new[:, 0] > note[0])).any()
    assert len(m) == len(before) + len(after) + len(new)
    assert (new[:, 0] + new[:, 1] <= end).all()  # nothing hangs past the span
    assert joined.tempo_qpm == piece.tempo_qpm and joined.time_signature == piece.time_signature


def test_infill_keeps_prefix_and_suffix_tokens_bit_for_bit(tiny_fim_model):
    """The model's prompt holds the prefix and suffix ids unchanged; re-encoding the joined piece gives
    back the prefix ids before the gap."""
    piece = random_piece(3)
    span = split_span(piece, VOCAB, "bach", 120, 240)
    full = [int(i) for i in encode_ids(piece, VOCAB, "bach")]
    assert span.suffix_ids[-30:] == full[-30:]
    cropped = split_span(piece, VOCAB, "bach", 120, 240, max_context=256, middle_tokens=100)
    out = [t[0] for t in infill(tiny_fim_model, cropped.prefix_ids, cropped.suffix_ids, cropped.steps,
                                 SamplingConfig(max_new_tokens=100, seed=0), VOCAB)]
    joined = join_span(span, out, VOCAB)
    again = split_span(joined, VOCAB, "bach", 120, 240)
    assert again.prefix_ids == span.prefix_ids  # the music before the gap, token for token
    # after the gap: the same note-ons and dynamics at the same times (releases differ only for notes that
    # began inside the gap: the old ones' are gone, the new ones' are there)
    assert timed_onsets(again.suffix_ids) == timed_onsets(span.suffix_ids)
    assert time_steps(again.suffix_ids, VOCAB) == time_steps(span.suffix_ids, VOCAB)


def timed_onsets(ids) -> list[tuple[int, int]]:
    """(time, id) of each note-on and dynamics token."""
    out, t = [], 0
    for i in ids:
        if VOCAB.wait_offset < i <= VOCAB.wait_offset + VOCAB.config.max_wait:
            t += i - VOCAB.wait_offset
        elif i < VOCAB.off_offset + VOCAB.config.pitch_lo:
            out.append((t, i))
    return out


def test_infill_refuses_plain_models_and_bad_spans(tiny_fim_model):
    from maia.errors import InputError

    plain = replace(VOCAB, fim=False)
    with pytest.raises(InputError, match="fill in the middle"):
        next(infill(tiny_fim_model, [plain.composer_id(None)], [], 12, SamplingConfig(), plain))
    piece = random_piece(0)
    with pytest.raises(InputError, match="start before its end"):
        split_span(piece, VOCAB, None, 50, 50)
    with pytest.raises(InputError, match="need 0 <= from < to"):
        beats_to_steps(piece, 4, 2)
    with pytest.raises(InputError, match="past the end"):
        beats_to_steps(piece, 10_000, 10_001)


@pytest.fixture(scope="module")
def fim_models_dir(tmp_path_factory, tiny_fim_model):
    from maia.checkpoint import save_model

    root = tmp_path_factory.mktemp("fim_models")
    save_model(root / "piano", tiny_fim_model, "gpt", tiny_fim_model.config, VOCAB, dtype=None)
    return root


def test_cli_infill_rewrites_only_the_passage(fim_models_dir, tmp_path):

    from maia.encoding import read

    src = random_piece(5).write_midi(tmp_path / "in.mid")
    out = tmp_path / "out.mid"
    r = maia("infill", str(src), "--from-beat", "8", "--to-beat", "16", "--seed", "2", "--top-k", "20", "-o", str(out),
             models_dir=fim_models_dir)
    assert r.returncode == 0, r.stderr
    assert "beats 8-16 rewritten" in r.stderr
    before, after = read(src).notes, read(out).notes
    kept = lambda n: n[(n[:, 0] < 96) | (n[:, 0] >= 192)][:, [0, 2, 3]]  # noqa: E731  onset, pitch, velocity
    assert np.array_equal(kept(before), kept(after))
    assert not np.array_equal(before, after)
    again = tmp_path / "again.mid"
    assert maia("infill", str(src), "--from-beat", "8", "--to-beat", "16", "--seed", "2", "--top-k", "20", "-o", str(again),
                models_dir=fim_models_dir).returncode == 0
    assert again.read_bytes() == out.read_bytes()  # same seed, same music
    bad = maia("infill", str(src), "--from-beat", "16", "--to-beat", "8", "-o", str(out), models_dir=fim_models_dir)
    assert bad.returncode == 1 and "need 0 <= from < to" in bad.stderr and "Traceback" not in bad.stderr
