"""Writes every example prompt in assets/prompts/ (see its README.md for what each one is).

Usage: python assets/make_prompts.py [OUT_DIR]      (default assets/prompts/)

The Lacrimosa comes from make_lacrimosa.py; the others are bars 1-8 of pieces in music21's bundled corpus, read
through maia.encoding so they are exactly what maia would read from the score. Their pickups are left out, so
the music starts at once on a downbeat and the piano roll's bar lines fall on the bars.
Every file is the same, byte for byte, on each run.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # maia, when run as a script from anywhere
sys.path.insert(0, str(HERE))  # make_lacrimosa

# file stem -> (music21 corpus name, last bar)
CORPUS_PROMPTS = {
    "bach_chorale_bwv66_6": ("bach/bwv66.6", 8),  # the closing chorale of Cantata BWV 66, 4/4, four voices
    "joplin_maple_leaf_rag": ("joplin/maple_leaf_rag", 8),  # the A strain's first phrase, 2/4
}


def corpus_prompt(name: str, last_bar: int):
    """Bars 1..last_bar of a music21 corpus piece (no pickup), as a maia Piece."""
    from music21 import corpus

    from maia.encoding import pieces_from_music21

    score = corpus.parse(name).measures(1, last_bar)
    return pieces_from_music21(score)[0]


def main(out_dir: str | Path) -> list[Path]:
    import make_lacrimosa

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [make_lacrimosa.write(out_dir)]
    for stem, (name, last_bar) in CORPUS_PROMPTS.items():
        written.append(corpus_prompt(name, last_bar).write_midi(out_dir / f"{stem}.mid"))
    return written


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else HERE / "prompts"):
        print(f"wrote {path}")
