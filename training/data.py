"""Training windows over a prepared corpus (see training/prepare.py).

Each piece's ids ``<composer:X> <start> ... <end>`` are cut into windows of ``seq_len`` tokens with 50%
overlap (configurable); every window begins with the piece's composer token, so the model always knows
whose music it continues. Windows are transposed into one of the 12 keys (-6..+5 semitones) on the fly,
a fresh key each time a window is drawn; ``materialise=True`` lists all 12 copies instead.

Two rearrangements teach the model what users ask of it:
- ``unknown_composer``: this share of training windows carries ``<composer:unknown>`` instead of the
  piece's composer, so that an upload with no composer (the usual case) is as well served;
- ``fim_rate``: this share of windows is rearranged for fill-in-the-middle (Bavarian et al. 2022) as
  ``<composer> <fim:prefix> A <fim:suffix> C <fim:middle> B <fim:end>``, where A B C is a stretch of the
  piece cut at two time steps (after a wait, before the step's events), so no step is split and the
  middle B advances time by exactly the gap between A and C. The loss covers every token, as in the
  paper's joint training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from maia.encoding import transpose_ids
from maia.errors import MaiaError
from maia.merges import apply_merges
from maia.scoring import window_starts
from maia.vocab import Vocab

IGNORE = -100  # target id ignored by cross-entropy (padding of a short last window)
KEYS = tuple(range(-6, 6))


class CorpusError(MaiaError):
    """A prepared corpus that cannot be used; the message names the file and what is wrong."""


def _check_index(folder: Path, index, n_tokens: int) -> None:
    """CorpusError unless index.json is a list of pieces whose token ranges lie inside tokens.npy."""
    if not isinstance(index, list):
        raise CorpusError(f"{folder / 'index.json'}: expected a list of pieces")
    for i, e in enumerate(index):
        try:
            start, n, split = int(e["start"]), int(e["tokens"]), e["split"]
        except (KeyError, TypeError, ValueError):
            raise CorpusError(f"{folder / 'index.json'}: piece {i} lacks start, tokens or split") from None
        if start < 0 or n < 0 or start + n > n_tokens or split not in ("train", "valid"):
            raise CorpusError(f"{folder / 'index.json'}: piece {i} ({e.get('path', '?')}) spans tokens "
                              f"{start}..{start + n} of {n_tokens}, split {split!r}: index and tokens.npy disagree")


@dataclass
class Corpus:
    """A prepared corpus folder: token ids, piece index and vocabulary."""

    tokens: np.ndarray
    index: list[dict]
    vocab: Vocab

    @classmethod
    def load(cls, folder: str | Path) -> Corpus:
        """Reads and checks a folder written by training.prepare. CorpusError (one line naming the file) for a
        missing, truncated or inconsistent corpus, before any model is built."""
        folder = Path(folder)
        if not (folder / "tokens.npy").exists():
            raise CorpusError(f"{folder}: no prepared corpus; run python -m training.prepare first")
        try:
            tokens = np.load(folder / "tokens.npy", mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise CorpusError(f"{folder / 'tokens.npy'}: not a readable token array ({e}); run training.prepare "
                              "again") from None
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
            raise CorpusError(f"{folder / 'tokens.npy'}: expected a 1-D integer array, found {tokens.dtype} "
                              f"{tokens.shape}")
        try:
            index = json.loads((folder / "index.json").read_text())
            vocab = Vocab.load(folder / "vocab.json")
        except (OSError, ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
            raise CorpusError(f"{folder}: index.json or vocab.json unreadable ({type(e).__name__}: {e})") from None
        _check_index(folder, index, len(tokens))
        if len(tokens) and int(tokens.max()) >= len(vocab):
            raise CorpusError(f"{folder / 'tokens.npy'}: token id {int(tokens.max())} is outside the vocabulary "
                              f"of {len(vocab)} (vocab.json from another corpus?)")
        return cls(tokens, index, vocab)

    def pieces(self, split: str, min_tokens: int = 0, exclude_composers=(), only_composers=()) -> list[np.ndarray]:
        """Token arrays of the pieces in ``split`` ('train', 'valid' or 'all') with at least min_tokens ids,
        leaving out ``exclude_composers`` (a leave-one-composer-out run), or keeping ``only_composers``."""
        return [np.asarray(self.tokens[e["start"] : e["start"] + e["tokens"]])
                for e in self.entries(split, exclude_composers, only_composers) if e["tokens"] >= min_tokens]

    def entries(self, split: str, exclude_composers=(), only_composers=()) -> list[dict]:
        return [e for e in self.index if (split == "all" or e["split"] == split)
                and e["composer"] not in exclude_composers and (not only_composers or e["composer"] in only_composers)]


class WindowDataset(Dataset):
    """(input, target) pairs of ``seq_len`` ids each, the target shifted by one."""

    def __init__(self, pieces: list[np.ndarray], vocab: Vocab, seq_len=512, overlap=0.5, transpose=True,
                 materialise=False, seed=0, unknown_composer=0.0, fim_rate=0.0):
        self.pieces, self.vocab, self.seq_len = pieces, vocab, seq_len
        self.unknown_composer, self.fim_rate = unknown_composer, fim_rate
        # With n-gram merges, pieces stay in base ids (so that transposing stays exact) and each window
        # is merged after transposing: take `expand` times more base tokens than the window holds.
        self.expand = merge_ratio(pieces, vocab) * 1.25 if vocab.merges else 1.0
        if fim_rate and not vocab.fim:
            raise ValueError("fim_rate > 0 needs a vocabulary with the fill-in-the-middle markers (fim=True)")
        if fim_rate:
            self.cut_after, self.cut_before = step_boundary_tables(vocab)
        base_len = int(seq_len * self.expand)
        stride = max(1, int(base_len * (1 - overlap)))
        # piece i's window j covers its composer token + body[start : start + base_len]
        self.windows = [(i, s) for i, p in enumerate(pieces) for s in window_starts(len(p) - 1, base_len, stride)]
        self.transpose, self.materialise = transpose, materialise and transpose
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.windows) * (len(KEYS) if self.materialise else 1)

    def __getitem__(self, k: int):
        if self.materialise:
            k, key = divmod(k, len(KEYS))
            shift = KEYS[key]
        else:
            shift = int(self.rng.integers(-6, 6)) if self.transpose else 0
        i, s = self.windows[k]
        p = self.pieces[i]
        fim = self.fim_rate > 0 and self.rng.random() < self.fim_rate
        n_body = self.seq_len - (4 if fim else 0)  # FIM adds 4 markers
        body = p[1 + s : 1 + s + int(n_body * self.expand) + (self.expand > 1)]
        if self.vocab.merges:
            body = apply_merges(transpose_ids(body, shift, self.vocab), self.vocab)[:n_body]
            shift = 0
        if fim:
            body = self.rearrange(body)
        x = np.concatenate([p[:1], body]).astype(np.int64)
        if self.unknown_composer and self.rng.random() < self.unknown_composer:
            x[0] = self.vocab.composer_id(None)
        x = transpose_ids(x, shift, self.vocab)
        inp = np.full(self.seq_len, self.vocab.pad_id, np.int64)
        tgt = np.full(self.seq_len, IGNORE, np.int64)
        inp[: len(x) - 1] = x[:-1]
        tgt[: len(x) - 1] = x[1:]
        return torch.from_numpy(inp), torch.from_numpy(tgt)


    def rearrange(self, body: np.ndarray) -> np.ndarray:
        """A B C -> <fim:prefix> A <fim:suffix> C <fim:middle> B <fim:end>, cut at two random step
        boundaries (i < j; A may be empty, C may be empty). A body without two boundaries stays as it is."""
        cuts = fim_cut_points(body, self.cut_after, self.cut_before)
        if len(cuts) < 2:
            return body
        i, j = np.sort(self.rng.choice(cuts, 2, replace=False))
        v = self.vocab
        return np.concatenate([[v.prefix_id], body[:i], [v.suffix_id], body[j:], [v.middle_id], body[i:j],
                               [v.fim_end_id]])


def merge_ratio(pieces: list[np.ndarray], vocab: Vocab, sample: int = 200_000) -> float:
    """Base tokens per merged token, measured on up to ``sample`` tokens of the pieces."""
    n, base, merged = 0, 0, 0
    for p in pieces:
        if n >= sample:
            break
        base += len(p)
        merged += len(apply_merges(p, vocab))
        n += len(p)
    return base / max(merged, 1)


def step_boundary_tables(vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Per token id (merge tokens by their first/last base token): may a cut follow it (it ends with a
    wait), may a cut precede it (it starts with a note, a dynamics level or <end>)."""
    w0, max_wait = vocab.wait_offset, vocab.config.max_wait
    is_wait = lambda t: w0 < t <= w0 + max_wait  # noqa: E731
    after = np.array([is_wait(vocab.expand_id(i)[-1]) for i in range(len(vocab))])
    before = np.array([not is_wait(vocab.expand_id(i)[0]) and vocab.expand_id(i)[0] not in vocab.special_ids
                       for i in range(len(vocab))])
    return after, before


def fim_cut_points(body: np.ndarray, cut_after: np.ndarray, cut_before: np.ndarray) -> np.ndarray:
    """Positions p (1 <= p < len) where body[p-1] ends a wait and body[p] begins a step's events."""
    b = np.asarray(body, np.int64)
    return np.flatnonzero(cut_after[b[:-1]] & cut_before[b[1:]]) + 1


def window_weights(dataset: WindowDataset, entries: list[dict], composer_weights: dict[str, float]) -> np.ndarray:
    """Sampling weight of each window: its piece's composer weight (1 when not named). ``entries`` are
    the index entries of ``dataset.pieces``, in order."""
    per_piece = np.array([float(composer_weights.get(e["composer"], 1.0)) for e in entries])
    w = per_piece[[i for i, _ in dataset.windows]]
    return np.tile(w, len(KEYS)) if dataset.materialise else w


def make_loader(dataset: WindowDataset, batch_size: int, shuffle: bool, sampler=None, workers=0, seed=0):
    """A DataLoader; pass a DistributedSampler as ``sampler`` under torchrun."""
    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, drop_last=shuffle, generator=g, worker_init_fn=_seed_worker)


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(torch.initial_seed() % 2**32)
