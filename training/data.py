"""Training windows over a prepared corpus (see training/prepare.py).

Each piece's ids ``<composer:X> <start> ... <end>`` are cut into windows of ``seq_len`` tokens with 50%
overlap (configurable); every window begins with the piece's composer token, so the model always knows
whose music it continues. Windows are transposed into one of the 12 keys (-6..+5 semitones) on the fly,
a fresh key each time a window is drawn; ``materialise=True`` lists all 12 copies instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from maia.encoding import transpose_ids
from maia.vocab import Vocab

IGNORE = -100  # target id ignored by cross-entropy (padding of a short last window)
KEYS = tuple(range(-6, 6))


@dataclass
class Corpus:
    """A prepared corpus folder: token ids, piece index and vocabulary."""

    tokens: np.ndarray
    index: list[dict]
    vocab: Vocab

    @classmethod
    def load(cls, folder: str | Path) -> Corpus:
        folder = Path(folder)
        if not (folder / "tokens.npy").exists():
            raise FileNotFoundError(f"{folder}: no prepared corpus; run python -m training.prepare first")
        tokens = np.load(folder / "tokens.npy", mmap_mode="r")
        index = json.loads((folder / "index.json").read_text())
        return cls(tokens, index, Vocab.load(folder / "vocab.json"))

    def pieces(self, split: str, min_tokens: int = 0) -> list[np.ndarray]:
        """Token arrays of the pieces in ``split`` ('train' or 'valid') with at least min_tokens ids."""
        return [
            np.asarray(self.tokens[e["start"] : e["start"] + e["tokens"]])
            for e in self.index
            if e["split"] == split and e["tokens"] >= min_tokens
        ]

    def entries(self, split: str) -> list[dict]:
        return [e for e in self.index if e["split"] == split]


def window_starts(length: int, seq_len: int, stride: int) -> list[int]:
    """Starts of overlapping windows over a body of ``length`` tokens; the last one ends at the end."""
    last = max(length - seq_len, 0)
    n = 1 + -(-last // stride)
    return [min(i * stride, last) for i in range(n)]


class WindowDataset(Dataset):
    """(input, target) pairs of ``seq_len`` ids each, the target shifted by one."""

    def __init__(self, pieces: list[np.ndarray], vocab: Vocab, seq_len=512, overlap=0.5, transpose=True,
                 materialise=False, seed=0):
        self.pieces, self.vocab, self.seq_len = pieces, vocab, seq_len
        stride = max(1, int(seq_len * (1 - overlap)))
        # piece i's window j covers its composer token + body[start : start + seq_len]
        self.windows = [(i, s) for i, p in enumerate(pieces) for s in window_starts(len(p) - 1, seq_len, stride)]
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
        x = np.concatenate([p[:1], p[1 + s : 1 + s + self.seq_len]]).astype(np.int64)
        x = transpose_ids(x, shift, self.vocab)
        inp = np.full(self.seq_len, self.vocab.pad_id, np.int64)
        tgt = np.full(self.seq_len, IGNORE, np.int64)
        inp[: len(x) - 1] = x[:-1]
        tgt[: len(x) - 1] = x[1:]
        return torch.from_numpy(inp), torch.from_numpy(tgt)


def make_loader(dataset: WindowDataset, batch_size: int, shuffle: bool, sampler=None, workers=0, seed=0):
    """A DataLoader; pass a DistributedSampler as ``sampler`` under torchrun."""
    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, drop_last=shuffle, generator=g, worker_init_fn=_seed_worker)


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(torch.initial_seed() % 2**32)
