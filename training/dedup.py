"""Near-duplicate works by content: MinHash over melodic interval shingles.

Two files are copies of one work when their top lines share most of their shapes. A file's signature is
the set of its *shingles*: every run of ``k`` consecutive intervals of its top line (the highest pitch at
each onset). Intervals make it transposition-proof; sets make it blind to repeats written out or not.
MinHash (Broder 1997) estimates the Jaccard similarity of two sets from ``n_hash`` minima, and
locality-sensitive hashing (bands of rows) finds the candidate pairs without comparing every pair; each
candidate's Jaccard is then computed exactly.
"""

from __future__ import annotations

import numpy as np

SHINGLE = 8  # intervals per shingle: 8 notes of melody rarely recur by chance across works
N_HASH, BANDS = 64, 32  # 32 bands of 2 rows: pairs with Jaccard >= ~0.2 almost surely become candidates


def top_line(notes: np.ndarray) -> np.ndarray:
    """(N, 4) notes sorted by onset -> the highest pitch at each distinct onset, (M,)."""
    if len(notes) == 0:
        return np.zeros(0, np.int64)
    onset, pitch = notes[:, 0], notes[:, 2]
    starts = np.r_[0, np.flatnonzero(np.diff(onset)) + 1]
    return np.maximum.reduceat(pitch, starts)


def shingles(notes: np.ndarray, k: int = SHINGLE) -> np.ndarray:
    """The sorted unique shingle codes (uint64) of a piece: k intervals, each clipped to +-63 (7 bits)."""
    line = top_line(np.asarray(notes))
    iv = np.clip(np.diff(line), -63, 63) + 64  # (M-1,) in 1..127
    if len(iv) < k:
        return np.zeros(0, np.uint64)
    code = np.zeros(len(iv) - k + 1, np.uint64)
    for j in range(k):  # 8 x 7 bits = 56 bits: exact, no collisions
        code = (code << np.uint64(7)) | iv[j : len(iv) - k + 1 + j].astype(np.uint64)
    return np.unique(code)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 or len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def minhash(sets: list[np.ndarray], n_hash: int = N_HASH, seed: int = 0) -> np.ndarray:
    """(n_sets, n_hash) uint64 signatures; an empty set gets all-max (it matches nothing)."""
    rng = np.random.default_rng(seed)
    xor = rng.integers(0, 2**63, n_hash, dtype=np.uint64)
    mul = rng.integers(0, 2**63, n_hash, dtype=np.uint64) | np.uint64(1)  # odd: a bijection mod 2^64
    sig = np.full((len(sets), n_hash), np.iinfo(np.uint64).max, np.uint64)
    with np.errstate(over="ignore"):  # multiplication mod 2^64 is the point
        for i, s in enumerate(sets):
            if len(s):
                sig[i] = ((s[:, None] ^ xor[None, :]) * mul[None, :]).min(axis=0)
    return sig


def candidate_pairs(sig: np.ndarray, bands: int = BANDS) -> set[tuple[int, int]]:
    """Pairs (i < j) whose signatures agree on all rows of at least one band."""
    rows = sig.shape[1] // bands
    empty = (sig == np.iinfo(np.uint64).max).all(axis=1)
    pairs: set[tuple[int, int]] = set()
    for b in range(bands):
        buckets: dict[bytes, list[int]] = {}
        for i in np.flatnonzero(~empty):
            buckets.setdefault(sig[i, b * rows : (b + 1) * rows].tobytes(), []).append(int(i))
        for members in buckets.values():
            if 1 < len(members) <= 200:  # a huge bucket is a trivial pattern (repeated notes), not a copy
                pairs.update((members[x], members[y]) for x in range(len(members)) for y in range(x + 1, len(members)))
    return pairs


def near_duplicates(sets: list[np.ndarray], threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, jaccard) for every pair whose exact Jaccard is at least ``threshold``."""
    sig = minhash(sets)
    out = []
    for i, j in sorted(candidate_pairs(sig)):
        s = jaccard(sets[i], sets[j])
        if s >= threshold:
            out.append((i, j, s))
    return out


def group_works(works: list[str], sets: list[np.ndarray], threshold: float) -> tuple[list[str], list[tuple]]:
    """Merges work ids of near-duplicate files (union-find). Returns each file's group id (the smallest
    work id of its group) and the merging pairs (i, j, jaccard) between different works."""
    parent = {w: w for w in works}

    def find(w):
        while parent[w] != w:
            parent[w] = parent[parent[w]]
            w = parent[w]
        return w

    merged = []
    for i, j, s in near_duplicates(sets, threshold):
        a, b = find(works[i]), find(works[j])
        if a != b:
            parent[max(a, b)] = min(a, b)
        if works[i] != works[j]:
            merged.append((i, j, s))
    return [find(w) for w in works], merged


def main(argv=None) -> int:
    """Measures the threshold on a prepared corpus: the Jaccard of copies the work rules already tie
    together (one work, two sources) against the closest pairs of different works."""
    import argparse
    from collections import defaultdict

    from maia.encoding import decode_ids
    from training.data import Corpus

    ap = argparse.ArgumentParser(description="near-duplicate report: python -m training.dedup --data data/piano")
    ap.add_argument("--data", required=True)
    a = ap.parse_args(argv)
    corpus = Corpus.load(a.data)
    entries = corpus.entries("all")
    sets = [shingles(decode_ids(p, corpus.vocab).notes) for p in corpus.pieces("all")]
    by_work = defaultdict(list)
    for i, e in enumerate(entries):
        by_work[e["work"]].append(i)
    same = [jaccard(sets[i], sets[j]) for idx in by_work.values() for x, i in enumerate(idx) for j in idx[x + 1 :]
            if entries[i]["source"] != entries[j]["source"]]
    cand = candidate_pairs(minhash(sets))
    other = sorted((jaccard(sets[i], sets[j]), i, j) for i, j in cand if entries[i]["group"] != entries[j]["group"])[::-1]
    q = np.quantile(same, [0, 0.1, 0.5]) if same else [float("nan")] * 3
    print(f"{len(entries)} pieces; {len(same)} pairs of one work from two sources (by the work rules): Jaccard "
          f"min {q[0]:.3f}, 10th percentile {q[1]:.3f}, median {q[2]:.3f}; below 0.3: {sum(s < 0.3 for s in same)}")
    print(f"closest pairs of different groups among {len(cand)} MinHash candidates:")
    for s, i, j in other[:8]:
        print(f"  {s:.3f}  {entries[i]['path']}  ~  {entries[j]['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
