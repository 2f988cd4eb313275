"""N-gram merges: frequent runs of notewise tokens as single tokens (byte-pair style); learn, apply, expand.

The original project explored merging frequent n-grams (``wait12 endp60`` ...) to shorten sequences.
Merges are learnt greedily from the training split: count adjacent pairs, merge the most frequent into a
new token, repeat K times. A merge token expands to a fixed run of base tokens, so merging is exactly
reversible (``expand(apply(x)) == x``). Composer, <start>, <end> and <pad> tokens never merge, so no
merge crosses a piece boundary.

Learning them from a corpus and comparing sizes: ``python -m training.merges --data data/piano``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from maia.vocab import Vocab


def _pair_positions(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Start positions of non-overlapping (left, right) pairs, taken left to right as BPE does."""
    pos = np.flatnonzero((x[:-1] == left) & (x[1:] == right))
    if left != right or len(pos) < 2:
        return pos
    # In a run "a a a a" the pairs start at 0,1,2: keep every other one from the run's first.
    new_run = np.r_[True, np.diff(pos) != 1]
    run_id = np.cumsum(new_run) - 1
    first = pos[new_run][run_id]
    return pos[(pos - first) % 2 == 0]


def expand_merges(ids, vocab: Vocab):
    """Replaces n-gram merge tokens by the base tokens they stand for (exact inverse of merging)."""
    if not vocab.merges:
        return ids
    base, runs = vocab.base_size, vocab.merge_runs
    out: list[int] = []
    for i in ids:
        i = int(i)
        out.extend(runs[i - base] if base <= i < base + len(runs) else (i,))
    return out


def _merge(x: np.ndarray, pos: np.ndarray, new_id: int) -> np.ndarray:
    keep = np.ones(len(x), bool)
    keep[pos + 1] = False
    x = x.copy()
    x[pos] = new_id
    return x[keep]


def learn_merges(sequences: list[np.ndarray], vocab: Vocab, n_merges: int, min_count: int = 2) -> Vocab:
    """Learns up to ``n_merges`` merges from ``sequences`` of base ids; returns the extended Vocab."""
    if vocab.merges:
        raise ValueError("vocabulary already has merges; learn from a base vocabulary")
    sep = vocab.pad_id  # pieces joined by <pad>, which never merges, so pairs never cross pieces
    x = np.concatenate([np.r_[np.asarray(s, np.int64), sep] for s in sequences]) if sequences else np.zeros(0, np.int64)
    barrier = np.zeros(vocab.base_size + n_merges, bool)
    barrier[[*vocab.special_ids, vocab.end_id]] = True
    merges: list[tuple[int, int]] = []
    width = vocab.base_size + n_merges
    for k in range(n_merges):
        if len(x) < 2:
            break
        a, b = x[:-1], x[1:]
        ok = ~(barrier[a] | barrier[b])
        codes = a[ok] * width + b[ok]
        if len(codes) == 0:
            break
        counts = np.bincount(codes)
        best = int(counts.argmax())
        if counts[best] < min_count:
            break
        left, right = divmod(best, width)
        pos = _pair_positions(x, left, right)
        x = _merge(x, pos, vocab.base_size + k)
        merges.append((int(left), int(right)))
    return replace(vocab, merges=tuple(merges))


def apply_merges(ids, vocab: Vocab) -> np.ndarray:
    """Base ids -> merged ids, applying the merges in the order they were learnt."""
    x = np.asarray(expand_merges(ids, vocab) if vocab.merges else ids, np.int64)
    for k, (left, right) in enumerate(vocab.merges):
        if len(x) < 2:
            break
        pos = _pair_positions(x, left, right)
        if len(pos):
            x = _merge(x, pos, vocab.base_size + k)
    return x
