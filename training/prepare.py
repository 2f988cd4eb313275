"""Corpus -> cached notewise token arrays.

Usage:
    python -m training.prepare --recipe training/corpora/piano.toml --out data/piano
    python -m training.prepare --source music21 --out data/music21 [--collections default|all|bach,mozart]
    python -m training.prepare --source path/to/midi [--source other/folder] --out data/mine [--metadata maestro.csv]

Steps:
  1. list the files: a recipe's sources (training/corpora/*.toml, see training/sources.py), the music21
     corpus that ships with music21, or folders searched recursively; each file gets a composer and a work;
  2. read each one in parallel on all cores (symusic for MIDI, music21 for scores); a file whose content
     (and reading settings) was read before comes from the cache in ``OUT/cache/`` instead;
  3. skip files that fail, one line each saying why;
  4. build the vocabulary from the composers found, encode every piece, and write
       OUT/tokens.npy   all pieces' token ids, concatenated (uint16)
       OUT/index.json   one entry per piece: path, source, composer, work, group, timing, tempo, start,
                        tokens, notes, seconds, split
       OUT/vocab.json   the vocabulary
       OUT/summary.md   pieces, tokens, notes and hours per composer and per source, skipped files, the
                        near-duplicates merged, time taken
  5. group files into works: the sources' own work ids, merged where the content is a near-copy
     (training/dedup.py), and split 95/5 by a hash of the group, so that every copy, window and
     transposition of a validation work stays out of training.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maia.encoding import MIDI_SUFFIXES, SCORE_SUFFIXES, Piece, encode_ids, read_midi_bytes, read_score
from maia.errors import MaiaError
from maia.vocab import EncodingConfig, Vocab, normalize_composer
from training.dedup import group_works, near_duplicates, shingles
from training.sources import CorpusFile, RecipeError, list_recipe, load_recipe

# Polyphonic art music: what a piano model should learn from. Left out by default, and why:
#   ryansMammoth, oneills1850, essenFolksong, airdsAirs, miscFolk, nottingham-dataset: ~2,200 monophonic
#     folk tunes, over half the corpus; a single melodic line teaches little about piano texture;
#   demos, leadSheet, theoryExercises: test files and chord symbols, not pieces;
#   *.rntxt files: Roman-numeral analyses (chord labels), not the music itself.
DEFAULT_COLLECTIONS = (
    "bach", "beethoven", "mozart", "haydn", "schumann_robert", "schumann_clara", "chopin", "schubert",
    "joplin", "handel", "corelli", "cpebach", "weber", "verdi", "beach", "johnson_j_r", "liliuokalani",
    "palestrina", "monteverdi", "josquin", "trecento", "ciconia", "luca", "lusitano", "schoenberg", "webern",
)
COMPOSER_ALIASES = {"schumann_robert": "schumann", "schumann_clara": "clara_schumann", "cpebach": "cpe_bach",
                    "johnson_j_r": "johnson", "trecento": "trecento", "luca": "luca_marenzio"}
VALID_PERCENT = 5
DEDUP_THRESHOLD = 0.3  # Jaccard of melodic shingles; see training/dedup.py and docs/data.md
MAX_FILE_BYTES = 32 * 1024 * 1024  # corpus files; uploads have their own, smaller limit


def list_music21(collections: str) -> list[CorpusFile]:
    """The chosen collections of music21's corpus; each file is its own work."""
    from music21 import corpus

    wanted = None if collections == "all" else set(DEFAULT_COLLECTIONS if collections == "default" else collections.split(","))
    out = []
    for p in corpus.getCorePaths():
        rel = str(p).split("/corpus/", 1)[-1]
        folder = rel.split("/", 1)[0]
        if p.suffix.lower() == ".rntxt" or (wanted is not None and folder not in wanted):
            continue
        out.append(CorpusFile(rel, Path(p), normalize_composer(COMPOSER_ALIASES.get(folder, folder)), rel))
    return sorted(out, key=lambda f: f.rel)


def list_folder(root: Path, metadata: Path | None, prefix: str = "") -> list[CorpusFile]:
    """MIDI and score files under ``root``, each its own work; the composer comes from a metadata CSV with
    MAESTRO's ``midi_filename``/``canonical_composer`` columns, else from the parent folder's name."""
    by_file: dict[str, str] = {}
    if metadata:
        with open(metadata, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("midi_filename"):
                    by_file[row["midi_filename"]] = row.get("canonical_composer", "")
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES | SCORE_SUFFIXES:
            rel = p.relative_to(root).as_posix()
            composer = by_file.get(rel) or (p.parent.name if p.parent != root else "unknown")
            out.append(CorpusFile(prefix + rel, p, normalize_composer(composer), prefix + rel))
    return out


def read_file(args) -> tuple[str, list[dict] | str]:
    """Worker: one file -> list of {notes, tempo, ts} (an abc/opus file may hold several pieces), or
    the reason it failed."""
    rel, path, cfg = args
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return rel, f"file over {MAX_FILE_BYTES >> 20} MB"
        if path.suffix.lower() in MIDI_SUFFIXES:
            pieces = [read_midi_bytes(path.read_bytes(), cfg, name=rel)]
        else:
            pieces = read_score(path, cfg)
        return rel, [{"notes": p.notes.astype(np.int32), "tempo": p.tempo_qpm, "ts": p.time_signature} for p in pieces]
    except MaiaError as e:
        return rel, str(e).replace(str(path), rel)
    except Exception as e:  # a corpus file music21 chokes on must not stop the run
        return rel, f"{type(e).__name__}: {str(e)[:120]}"


def file_key(path: Path, cfg: EncodingConfig) -> str:
    """Cache key: the file's content plus the settings that change how it is read."""
    h = hashlib.sha1(path.read_bytes())
    h.update(json.dumps(asdict(cfg), sort_keys=True).encode())
    return h.hexdigest()


def split_of(group: str, valid_percent: int = VALID_PERCENT) -> str:
    """Deterministic 95/5 split from a work group's id, so every copy, transposition and window of a
    work stays on one side."""
    return "valid" if int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) % 100 < valid_percent else "train"


def load_cached(cache: Path, key: str) -> list[dict] | None:
    f = cache / f"{key}.npz"
    if not f.exists():
        return None
    with np.load(f, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return [{"notes": z[f"n{i}"], **m} for i, m in enumerate(meta)]


def save_cached(cache: Path, key: str, pieces: list[dict]) -> None:
    meta = json.dumps([{"tempo": p["tempo"], "ts": p["ts"]} for p in pieces])
    np.savez(cache / f"{key}.npz", meta=np.array(meta), **{f"n{i}": p["notes"] for i, p in enumerate(pieces)})


def prepare(files: list[CorpusFile], out: Path, cfg: EncodingConfig, workers: int, quiet=False,
            valid_percent: int = VALID_PERCENT, dedup_threshold: float | None = DEDUP_THRESHOLD) -> dict:
    """Reads, caches, groups and encodes ``files`` into ``out``; returns the summary.
    ``dedup_threshold``: Jaccard above which two files of different works are merged into one group
    (None: trust the work ids alone)."""
    t0 = time.time()
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if len({f.rel for f in files}) != len(files):
        raise MaiaError("two corpus files share a relative path; give the sources distinct names")
    keys = {f.rel: file_key(f.path, cfg) for f in files}
    results: dict[str, list[dict] | str] = {}
    todo = []
    for f in files:
        hit = load_cached(cache, keys[f.rel])
        if hit is not None:
            results[f.rel] = hit
        else:
            todo.append((f.rel, f.path, cfg))
    print(f"{len(files)} files: {len(files) - len(todo)} from cache, {len(todo)} to read on {workers} workers")
    if todo:
        with ProcessPoolExecutor(workers) as pool:
            for rel, res in tqdm(pool.map(read_file, todo, chunksize=1), total=len(todo), disable=quiet):
                results[rel] = res
                if not isinstance(res, str):
                    save_cached(cache, keys[rel], res)
    skipped = {rel: res for rel, res in results.items() if isinstance(res, str)}
    for rel, why in sorted(skipped.items()):
        print(f"skipped {rel}: {why}", file=sys.stderr)
    kept = [f for f in files if f.rel not in skipped]

    # Work groups: the sources' work ids, merged where two files' melodies are near-copies.
    sets = [shingles(np.concatenate([p["notes"] for p in results[f.rel]])) for f in kept]
    merged: list[tuple] = []
    groups = [f.work for f in kept]
    if dedup_threshold is not None:
        groups, merged = group_works(groups, sets, dedup_threshold)
    group_of = {f.rel: g for f, g in zip(kept, groups, strict=True)}
    split = {f.rel: split_of(group_of[f.rel], valid_percent) for f in kept}
    leaks = [] if dedup_threshold is None else [
        (kept[i].rel, kept[j].rel, s) for i, j, s in near_duplicates(sets, dedup_threshold)
        if split[kept[i].rel] != split[kept[j].rel]]

    composers = sorted({f.composer for f in kept})
    vocab = Vocab(cfg, tuple(composers))
    arrays, index, pos = [], [], 0
    for f in kept:
        for i, p in enumerate(results[f.rel]):
            piece = Piece(p["notes"].astype(np.int64), cfg.steps_per_quarter, p["tempo"], p["ts"] and tuple(p["ts"]))
            ids = encode_ids(piece, vocab, f.composer)
            arrays.append(ids)
            index.append({"path": f.rel + (f"#{i}" if len(results[f.rel]) > 1 else ""), "source": f.source,
                          "composer": f.composer, "work": f.work, "group": group_of[f.rel], "timing": f.timing,
                          "tempo": round(float(piece.tempo_qpm), 3), "start": pos, "tokens": len(ids),
                          "notes": len(piece), "seconds": round(piece.duration_seconds, 2), "split": split[f.rel]})
            pos += len(ids)
    tokens = np.concatenate(arrays) if arrays else np.zeros(0, np.uint16)
    np.save(out / "tokens.npy", tokens)
    vocab.save(out / "vocab.json")
    (out / "index.json").write_text(json.dumps(index, indent=0))
    dedup = {"threshold": dedup_threshold, "merged": [[kept[i].rel, kept[j].rel, round(s, 3)] for i, j, s in merged],
             "cross_split_near_copies": [[a, b, round(s, 3)] for a, b, s in leaks]}
    summary = summarise(index, skipped, time.time() - t0, len(files), len(todo), vocab, dedup)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_markdown(summary))
    return summary


def _tally(index, key) -> dict:
    per = defaultdict(lambda: {"works": set(), "pieces": 0, "tokens": 0, "notes": 0, "valid_pieces": 0, "seconds": 0.0})
    for e in index:
        d = per[e.get(key, "")]
        d["works"].add(e.get("group", e["path"]))
        d["pieces"] += 1
        d["tokens"] += e["tokens"]
        d["notes"] += e["notes"]
        d["seconds"] += e["seconds"]
        d["valid_pieces"] += e["split"] == "valid"
    return {k: {**v, "works": len(v["works"]), "seconds": round(v["seconds"], 1)} for k, v in sorted(per.items())}


def summarise(index, skipped, seconds, n_files, n_read, vocab, dedup=None) -> dict:
    return {
        "files": n_files, "files_read": n_read, "pieces": len(index), "vocab_size": len(vocab),
        "works": len({e.get("group", e["path"]) for e in index}),
        "tokens": sum(e["tokens"] for e in index), "notes": sum(e["notes"] for e in index),
        "valid_tokens": sum(e["tokens"] for e in index if e["split"] == "valid"),
        "seconds_taken": round(seconds, 1), "per_composer": _tally(index, "composer"),
        "per_source": _tally(index, "source"), "skipped": skipped, "dedup": dedup or {},
    }


def summary_markdown(s: dict) -> str:
    lines = [
        f"{s['pieces']} pieces ({s.get('works', '?')} works) from {s['files']} files ({s['files_read']} parsed, the "
        f"rest from the cache), {s['notes']:,} notes, {s['tokens']:,} tokens ({s['valid_tokens']:,} in the "
        f"validation split), vocabulary {s['vocab_size']}; {len(s['skipped'])} files skipped; {s['seconds_taken']} s.",
    ]
    for title, key in (("composer", "per_composer"), ("source", "per_source")):
        lines += ["", f"| {title} | works | pieces | valid pieces | notes | tokens | tokens/note | hours |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for c, d in s.get(key, {}).items():
            lines.append(f"| {c or '-'} | {d.get('works', '')} | {d['pieces']} | {d['valid_pieces']} | {d['notes']:,} | "
                         f"{d['tokens']:,} | {d['tokens'] / max(d['notes'], 1):.2f} | {d['seconds'] / 3600:.2f} |")
    dd = s.get("dedup") or {}
    if dd.get("threshold") is not None:
        lines += ["", f"Near-duplicates (Jaccard >= {dd['threshold']} on melodic shingles): "
                      f"{len(dd['merged'])} pairs of different works merged into one group; "
                      f"{len(dd['cross_split_near_copies'])} near-copies across the splits."]
        lines += [f"- `{a}` ~ `{b}` ({j})" for a, b, j in dd["merged"][:200]]
    if s["skipped"]:
        lines += ["", "Skipped files:", ""] + [f"- `{k}`: {v}" for k, v in sorted(s["skipped"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", type=Path, help="a corpus recipe (TOML), e.g. training/corpora/piano.toml")
    ap.add_argument("--source", action="append", default=[],
                    help="'music21' for the corpus music21 ships, or a folder; repeatable")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--collections", default="default", help="music21 only: default, all, or a,b,c")
    ap.add_argument("--metadata", type=Path, help="CSV with midi_filename and canonical_composer columns")
    ap.add_argument("--enable", default="", help="recipe sources to switch on, comma-separated")
    ap.add_argument("--disable", default="", help="recipe sources to switch off, comma-separated")
    ap.add_argument("--dedup", type=float, help="Jaccard threshold for near-duplicate works (default: the "
                    "recipe's, else 0.3); 1.1 turns it off")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-files", type=int, help="first N files only (for quick tries)")
    ap.add_argument("--steps-per-quarter", type=int, default=EncodingConfig.steps_per_quarter)
    ap.add_argument("--pitch-range", default="21-108", help="lowest-highest MIDI pitch kept (folded by octaves)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        lo, hi = (int(x) for x in a.pitch_range.split("-"))
        cfg = EncodingConfig(steps_per_quarter=a.steps_per_quarter, pitch_lo=lo, pitch_hi=hi)
    except ValueError as e:
        ap.error(f"bad --pitch-range or grid: {e}")
    if not a.recipe and not a.source:
        ap.error("give --recipe or at least one --source")
    valid_percent, threshold, files = VALID_PERCENT, DEDUP_THRESHOLD, []
    try:
        if a.recipe:
            recipe = load_recipe(a.recipe)
            on, off = set(filter(None, a.enable.split(","))), set(filter(None, a.disable.split(",")))
            unknown = (on | off) - {s.name for s in recipe.sources}
            if unknown:
                ap.error(f"--enable/--disable: no source {sorted(unknown)} in {a.recipe}")
            for src in recipe.sources:
                src.enabled = (src.enabled or src.name in on) and src.name not in off
            files = list_recipe(recipe, Path.cwd())
            valid_percent, threshold = recipe.valid_percent, recipe.dedup_threshold
        for source in a.source:
            prefix = f"{Path(source).name}/" if len(a.source) > 1 or a.recipe else ""
            if source == "music21":
                files += list_music21(a.collections)
            elif Path(source).is_dir():
                files += list_folder(Path(source), a.metadata, prefix)
            else:
                ap.error(f"--source {source}: not 'music21' and not a folder")
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    threshold = a.dedup if a.dedup is not None else threshold
    threshold = None if threshold > 1 else threshold
    files = files[: a.max_files] if a.max_files else files
    if not files:
        print("no music files found", file=sys.stderr)
        return 1
    try:
        s = prepare(files, a.out, cfg, a.workers, a.quiet, valid_percent, threshold)
    except MaiaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary_markdown(s))
    return 0 if s["pieces"] else 1


if __name__ == "__main__":
    sys.exit(main())
