"""training/data.py: composer weights, leave-one-composer-out selection and n-gram merges per window."""

from __future__ import annotations

import numpy as np
from helpers import random_piece

from maia.encoding import encode_ids, expand_merges, transpose_ids
from maia.merges import learn_merges
from maia.vocab import Vocab
from training.data import Corpus, WindowDataset, merge_ratio, window_weights

VOCAB = Vocab(composers=("bach", "pop"))


def test_window_weights_follow_the_composer():
    pieces = [encode_ids(random_piece(s), VOCAB, c) for s, c in ((0, "bach"), (1, "pop"), (2, "pop"))]
    entries = [{"composer": "bach"}, {"composer": "pop"}, {"composer": "pop"}]
    ds = WindowDataset(pieces, VOCAB, seq_len=64)
    w = window_weights(ds, entries, {"pop": 0.25})
    piece_of = np.array([i for i, _ in ds.windows])
    assert set(w[piece_of == 0]) == {1.0} and set(w[piece_of > 0]) == {0.25}


def test_corpus_selection_by_composer(tiny_corpus):
    c = Corpus.load(tiny_corpus)
    assert len(c.pieces("all")) == 10 and c.pieces("all", exclude_composers=("bach",)) == []
    assert len(c.pieces("valid", only_composers=("bach",))) == 2


def test_merged_windows_transpose_exactly():
    """With merges, a window is transposed in base tokens and merged afterwards: expanding it gives
    the transposed base tokens of the piece."""
    pieces = [encode_ids(random_piece(s), VOCAB, "bach") for s in range(5)]
    merged = learn_merges(pieces, VOCAB, 64)
    assert merge_ratio(pieces, merged) > 1.05
    ds = WindowDataset(pieces, merged, seq_len=48, seed=3)
    for k in range(0, len(ds), 7):
        x, _ = ds[k]
        ids = [int(i) for i in x if i != merged.pad_id]
        base = expand_merges(ids[1:], merged)
        i, s = ds.windows[k]
        src = pieces[i][1 + s : 1 + s + len(base)]
        assert any(list(transpose_ids(src, t, VOCAB)) == base for t in range(-6, 6))
