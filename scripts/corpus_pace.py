"""Tokens per second of music in a model's corpus: the range the page's length hint gives without a prompt
(maia/playground.py, CORPUS_TOKENS_PER_SECOND).

    .venv/bin/python -m scripts.corpus_pace [--model piano] --data FOLDER [--files 300]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from maia.encoding import MIDI_SUFFIXES, encode_ids, read
from maia.errors import MaiaError
from maia.serving import Serving


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="piano")
    ap.add_argument("--data", required=True, help="a folder of the corpus's MIDI files")
    ap.add_argument("--files", type=int, default=300, help="how many files, drawn with seed 0")
    a = ap.parse_args()
    files = sorted(f for f in Path(a.data).rglob("*") if f.suffix.lower() in MIDI_SUFFIXES)
    random.Random(0).shuffle(files)
    vocab = Serving.default().vocab_of(a.model)
    rates = []
    for f in files[:a.files]:
        try:
            piece = read(f)
        except MaiaError:
            continue
        if piece.duration_seconds >= 5:  # <composer> <start> ... <end> are not music
            rates.append((len(encode_ids(piece, vocab)) - 3) / piece.duration_seconds)
    p10, p50, p90 = np.percentile(rates, [10, 50, 90])
    print(f"{a.model}: {len(rates)} files, tokens per second: 10th percentile {p10:.1f}, median {p50:.1f}, "
          f"90th {p90:.1f}")


if __name__ == "__main__":
    main()
