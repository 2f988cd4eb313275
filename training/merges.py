"""Learn n-gram merges on a prepared corpus and compare sequence lengths with plain notewise tokens.

Usage:
    python -m training.merges --data data/piano --merges 256,1024     # prints the unigram vs n-gram table
"""

from __future__ import annotations

import argparse

import numpy as np

from maia.merges import apply_merges, learn_merges
from maia.vocab import Vocab
from training.data import Corpus


def compare(sequences: list[np.ndarray], notes: int, vocab: Vocab, merged: Vocab) -> dict:
    """Vocabulary size and mean tokens per note, unigram (base) vs n-gram (merged)."""
    base_tokens = sum(len(s) for s in sequences)
    merged_tokens = sum(len(apply_merges(s, merged)) for s in sequences)
    return {
        "unigram": {"vocab_size": len(vocab), "tokens": base_tokens, "tokens_per_note": base_tokens / max(notes, 1)},
        "ngram": {"vocab_size": len(merged), "merges": len(merged.merges), "tokens": merged_tokens,
                  "tokens_per_note": merged_tokens / max(notes, 1)},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/music21")
    ap.add_argument("--merges", default="64,256,1024", help="comma-separated merge counts to compare")
    a = ap.parse_args(argv)
    corpus = Corpus.load(a.data)
    train = corpus.pieces("train")
    valid = corpus.pieces("valid")
    valid_notes = sum(e["notes"] for e in corpus.entries("valid"))
    print("| tokenization | vocabulary | merges | validation tokens | tokens per note |")
    print("|---|---:|---:|---:|---:|")
    for i, k in enumerate(int(k) for k in a.merges.split(",")):
        merged = learn_merges(train, corpus.vocab, k)
        r = compare(valid, valid_notes, corpus.vocab, merged)
        if i == 0:
            u = r["unigram"]
            print(f"| unigram (notewise) | {u['vocab_size']} | 0 | {u['tokens']:,} | {u['tokens_per_note']:.3f} |")
        g = r["ngram"]
        print(f"| n-gram | {g['vocab_size']} | {g['merges']} | {g['tokens']:,} | {g['tokens_per_note']:.3f} |")
        top = sorted(range(len(merged.merges)), key=lambda j: -len(merged.merge_runs[j]))[:3]
        print(f"<!-- longest merges for K={k}: {', '.join(merged.itos[merged.base_size + j] for j in top)} -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
