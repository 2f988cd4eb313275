"""Encoding speed: maia's notewise encoder against MidiTok's REMI, from MIDI bytes on disk to token ids.

Usage: .venv/bin/python -m bench.encoding [--cache bench/cache/midi] [--repeats 5] [--json OUT]

Steps:
1. Build (once) a set of MIDI files from the music21 corpus: Bach chorales, Beethoven, Mozart and Haydn
   quartet movements, Joplin and Schumann, each parsed by music21, converted with
   ``maia.encoding.pieces_from_music21`` and written with ``Piece.write_midi``. Skipped when present.
2. Time both tokenizers over the same files in one process, single-threaded, each pass covering every
   file: maia = read bytes -> ``read_midi_bytes`` -> ``encode_ids``; MidiTok = read bytes ->
   ``symusic.Score.from_midi`` -> ``REMI(TokenizerConfig()).encode`` (ids included). Passes alternate
   between the two so that machine noise hits both alike; the figure reported is the median pass.
3. Print notes/s and files/s for both, and the ratio maia / MidiTok.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path

from tqdm import tqdm

# Substantial pieces so that note counts are realistic (a chorale has ~200 notes, a quartet movement
# several thousand). Paths are music21 corpus names; anything missing from the installed corpus is skipped.
N_CHORALES = 20
COMPOSERS = ["beethoven", "mozart", "haydn", "joplin", "schumann_robert", "schumann_clara"]
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml")


def corpus_paths() -> list[Path]:
    """Corpus files to convert: the first N_CHORALES Bach chorales and every MusicXML file of COMPOSERS."""
    from music21 import corpus

    bach = sorted(p for p in corpus.getComposer("bach") if str(p).endswith(SCORE_SUFFIXES))
    paths = [Path(p) for p in bach[:N_CHORALES]]
    for c in COMPOSERS:
        paths += sorted(Path(p) for p in corpus.getComposer(c) if str(p).endswith(SCORE_SUFFIXES))
    return paths


def build_cache(folder: Path) -> list[Path]:
    """Writes one .mid per corpus piece into ``folder`` unless it is already there; returns all .mid files."""
    import music21

    from maia.encoding import pieces_from_music21

    folder.mkdir(parents=True, exist_ok=True)
    root = Path(music21.common.getCorpusFilePath())
    for src in tqdm(corpus_paths(), desc="corpus -> MIDI", unit="score"):
        name = "_".join(src.relative_to(root).with_suffix("").parts).replace(".", "-")  # bach_bwv66-6
        if (folder / f"{name}.mid").exists() or (folder / f"{name}_0.mid").exists():
            continue
        try:
            pieces = pieces_from_music21(music21.converter.parse(src))
        except Exception as e:  # a corpus file music21 cannot read is reported and left out
            tqdm.write(f"skip {src.name}: {type(e).__name__}: {e}")
            continue
        for k, piece in enumerate(pieces):
            piece.write_midi(folder / (f"{name}.mid" if len(pieces) == 1 else f"{name}_{k}.mid"))
    return sorted(folder.glob("*.mid"))


def maia_pass(files, vocab) -> int:
    from maia.encoding import encode_ids, read_midi_bytes

    n = 0
    for f in files:
        n += len(encode_ids(read_midi_bytes(f.read_bytes(), vocab.config, name=str(f)), vocab))
    return n


def miditok_pass(files, tokenizer) -> int:
    from symusic import Score

    n = 0
    for f in files:
        seqs = tokenizer.encode(Score.from_midi(f.read_bytes()))
        n += sum(len(s.ids) for s in (seqs if isinstance(seqs, list) else [seqs]))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(__file__).parent / "cache" / "midi")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per tokenizer (median reported)")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()

    import miditok
    from symusic import Score

    from maia.vocab import Vocab

    # 1. The files, and their note counts (the same MIDI notes are fed to both tokenizers).
    files = build_cache(args.cache)
    if len(files) < 50:
        raise SystemExit(f"only {len(files)} MIDI files in {args.cache}; expected at least 50")
    n_notes = sum(Score.from_midi(f.read_bytes()).note_num() for f in files)
    n_bytes = sum(f.stat().st_size for f in files)
    print(f"{len(files)} MIDI files, {n_notes:,} notes, {n_bytes / 1e6:.1f} MB in {os.path.relpath(args.cache)}")

    # 2. Time both, alternating passes; one untimed warm-up pass each (imports, page cache, JIT-free).
    vocab = Vocab()
    tokenizer = miditok.REMI(miditok.TokenizerConfig())
    runs = {"maia": (maia_pass, vocab), "miditok_remi": (miditok_pass, tokenizer)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    n_tokens = {k: fn(files, arg) for k, (fn, arg) in runs.items()}
    for _ in tqdm(range(args.repeats), desc="timing", unit="pass"):
        for k, (fn, arg) in runs.items():
            t0 = time.perf_counter()
            fn(files, arg)
            times[k].append(time.perf_counter() - t0)

    # 3. Figures.
    results = {}
    for k in runs:
        t = statistics.median(times[k])
        results[k] = dict(
            seconds=t,
            notes_per_s=n_notes / t,
            files_per_s=len(files) / t,
            tokens=n_tokens[k],
            tokens_per_note=n_tokens[k] / n_notes,
            all_seconds=times[k],
        )
    ratio = results["miditok_remi"]["seconds"] / results["maia"]["seconds"]
    print(f"median of {args.repeats} passes, single process, MIDI bytes on disk -> token ids")
    print(f"{'':14s}{'seconds':>9s}{'notes/s':>12s}{'files/s':>10s}{'tokens/note':>13s}")
    for k, r in results.items():
        print(
            f"{k:14s}{r['seconds']:9.3f}{r['notes_per_s']:12,.0f}{r['files_per_s']:10.1f}{r['tokens_per_note']:13.2f}"
        )
    print(f"speed ratio maia / MidiTok REMI: {ratio:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        env = dict(python=platform.python_version(), symusic=version("symusic"), miditok=version("miditok"))
        args.json.write_text(
            json.dumps(
                dict(
                    files=len(files),
                    notes=n_notes,
                    repeats=args.repeats,
                    statistic="median",
                    results=results,
                    ratio_maia_over_miditok=ratio,
                    env=env,
                ),
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
