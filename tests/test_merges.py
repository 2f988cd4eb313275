"""N-gram (BPE-style) merges over notewise tokens: learnt, applied, exactly reversible."""

import numpy as np
import pytest

from maia.encoding import decode_ids, encode_ids, expand_merges
from maia.merges import _pair_positions, apply_merges, learn_merges
from maia.vocab import Vocab


@pytest.fixture(scope="module")
def chorales():
    from music21 import corpus

    from maia.encoding import pieces_from_music21

    vocab = Vocab(composers=("bach",))
    paths = corpus.getComposer("bach")[:6]
    pieces = [p for path in paths for p in pieces_from_music21(corpus.parse(path))]
    return vocab, pieces, [encode_ids(p, vocab, "bach") for p in pieces]


def test_merges_are_reversible_and_shorten(chorales):
    vocab, pieces, seqs = chorales
    merged = learn_merges(seqs[:4], vocab, 64)
    assert len(merged) == len(vocab) + len(merged.merges) and len(merged.merges) > 10
    for piece, s in zip(pieces, seqs, strict=True):
        m = apply_merges(s, merged)
        assert len(m) < len(s)
        assert np.array_equal(np.asarray(expand_merges(m, merged)), s)
        assert np.array_equal(decode_ids(m, merged).notes[:, :3], piece.notes[:, :3])


def test_merges_never_touch_special_tokens(chorales):
    vocab, _, seqs = chorales
    merged = learn_merges(seqs, vocab, 128)
    specials = set(vocab.special_ids) | {vocab.end_id}
    for run in merged.merge_runs:
        assert not specials & set(run)


def test_vocab_with_merges_round_trips_json(chorales, tmp_path):
    vocab, _, seqs = chorales
    merged = learn_merges(seqs, vocab, 32)
    merged.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.itos == merged.itos and again.merge_runs == merged.merge_runs


@pytest.mark.parametrize(("seq", "expected"), [([5, 5, 5, 5], [0, 2]), ([5, 5, 5, 7, 5, 5], [0, 4]), ([5, 7], [])])
def test_overlapping_pairs_taken_left_to_right(seq, expected):
    assert _pair_positions(np.array(seq), 5, 5).tolist() == expected
