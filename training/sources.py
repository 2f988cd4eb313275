"""Corpus recipes: which files make a corpus, whose music each is, and which work it belongs to.

A recipe is data (a TOML file in ``training/corpora/``): a list of ``[[sources]]``, each a folder with
include/exclude globs, a timing style (``score`` on the beat grid, or ``performance`` in human timing),
a composer rule and a work rule. ``prepare`` reads recipes; ``--source DIR`` and ``--source music21`` are
one-source recipes built here too.

Composer rules (``composer = ...``):
    "@folder"   the first folder under the source's root (ASAP: ``Beethoven/Piano_Sonatas/1-1`` -> beethoven)
    "@parent"   the file's own folder
    "@kern"     the ``!!!COM:`` reference line of a Humdrum file, matched against the recipe's
                ``known_composers`` (so ``F. Chopin``, ``Chopin, Fryderyk`` and ``Fryderyk Chopipn`` are one)
    "@music21"  music21's corpus collection name
    other       a fixed name, e.g. "pop"

Work rules (``work = ...``): "@folder" (the file's folder: a work with several files, e.g. a score and
its performances), "@stem" (each file is a work), "@stem-prefix" (the file name up to its first ``-``:
Chopin's ``001-1-BRZ.krn`` and ``001-1a-HO.krn`` are both op. 1). ``work_rules`` then rewrite the work id
with regular expressions so that two sources name one work alike (ASAP's ``Beethoven/Piano_Sonatas/1-1``
and kern's ``sonata01-1`` both become ``beethoven-sonata-1-1``). Copies the rules miss are caught by
content (training/dedup.py).
"""

from __future__ import annotations

import difflib
import fnmatch
import html
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from maia.encoding import MIDI_SUFFIXES, SCORE_SUFFIXES
from maia.errors import MaiaError
from maia.vocab import UNKNOWN_COMPOSER, normalize_composer

TIMINGS = ("score", "performance")


class RecipeError(MaiaError):
    """A corpus recipe that cannot be used; the message names the recipe and the problem."""


@dataclass(frozen=True)
class CorpusFile:
    """One file of a corpus. ``rel`` is unique across sources (it starts with the source's name)."""

    rel: str
    path: Path
    composer: str
    work: str  # files with one work id always land in one split
    timing: str = "score"
    source: str = ""


@dataclass
class Source:
    name: str
    root: str
    include: list[str] = field(default_factory=lambda: ["**/*"])
    exclude: list[str] = field(default_factory=list)
    timing: str = "score"
    composer: str = "@parent"
    work: str = "@stem"
    work_rules: list[list[str]] = field(default_factory=list)  # [regex, replacement with \1 groups]
    enabled: bool = True
    note: str = ""  # why the source is in (or out of) the corpus; printed in the summary

    def __post_init__(self):
        if self.timing not in TIMINGS:
            raise RecipeError(f"source {self.name}: timing must be one of {TIMINGS}, not {self.timing!r}")
        for rule in self.work_rules:
            if len(rule) != 2:
                raise RecipeError(f"source {self.name}: a work rule is [regex, replacement], got {rule}")
            try:
                re.compile(rule[0])
            except re.error as e:
                raise RecipeError(f"source {self.name}: bad work rule regex {rule[0]!r}: {e}") from None


@dataclass
class Recipe:
    name: str
    sources: list[Source]
    known_composers: list[str] = field(default_factory=list)
    min_composer_files: int = 1  # composers with fewer files than this get <composer:unknown>
    valid_percent: int = 5
    dedup_threshold: float = 0.5  # Jaccard of melodic shingles above which two files are one work
    description: str = ""


def load_recipe(path: str | Path, root: Path | None = None) -> Recipe:
    """Reads a recipe TOML; unknown keys are refused with the known ones named."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise RecipeError(f"{path}: cannot read recipe ({e})") from None
    return recipe_from_dict(data, path.stem)


def _check_keys(where: str, given: dict, cls) -> None:
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(given) - known)
    if unknown:
        raise RecipeError(f"{where}: unknown keys {unknown} (known: {', '.join(sorted(known))})")


def recipe_from_dict(data: dict, name: str) -> Recipe:
    data = dict(data)
    sources = data.pop("sources", [])
    data.setdefault("name", name)
    _check_keys(f"recipe {name}", data, Recipe)
    out = []
    for s in sources:
        _check_keys(f"recipe {name}, source {s.get('name', '?')}", s, Source)
        if "name" not in s or "root" not in s:
            raise RecipeError(f"recipe {name}: every source needs a name and a root")
        out.append(Source(**s))
    if len({s.name for s in out}) != len(out):
        raise RecipeError(f"recipe {name}: two sources share a name")
    return Recipe(sources=out, **data)


def kern_composer(path: Path) -> str | None:
    """The raw ``!!!COM:`` value of a Humdrum file (first one), or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("!!!COM"):
                    return line.split(":", 1)[1].strip() if ":" in line else None
                if not line.startswith("!"):
                    break  # reference records come first
    except OSError:
        return None
    return None


def match_composer(raw: str | None, known: list[str]) -> str:
    """A free-text composer credit -> a normalised name: the known composer one of its words names
    (allowing a typo), else the surname (before a comma, or the last word)."""
    if not raw:
        return UNKNOWN_COMPOSER
    text = html.unescape(raw).strip("[]() ").replace("]", "").replace("[", "")
    words = [w.lower() for w in re.split(r"[\s,.;]+", text) if len(w) > 1]
    for w in words:
        hit = difflib.get_close_matches(w, known, n=1, cutoff=0.8)
        if hit:
            return hit[0]
    surname = text.split(",")[0].split()[0] if "," in text else (text.split() or [""])[-1]
    return normalize_composer(surname)


def _matches(rel: str, patterns: list[str]) -> bool:
    # fnmatch's * crosses '/', so "**/x.mid" would miss "x.mid" at the root: try both forms.
    return any(fnmatch.fnmatch(rel, p) or (p.startswith("**/") and fnmatch.fnmatch(rel, p[3:])) for p in patterns)


def list_source(src: Source, base: Path, known: list[str]) -> list[CorpusFile]:
    """The files of one source, with their composer and work ids."""
    root = (base / src.root) if not Path(src.root).is_absolute() else Path(src.root)
    if not root.is_dir():
        raise RecipeError(f"source {src.name}: folder {src.root} not found (see docs/data.md for how to get it)")
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in MIDI_SUFFIXES | SCORE_SUFFIXES:
            continue
        rel = p.relative_to(root).as_posix()
        if not _matches(rel, src.include) or _matches(rel, src.exclude):
            continue
        parts = rel.split("/")
        if src.composer == "@folder":
            composer = normalize_composer(parts[0]) if len(parts) > 1 else UNKNOWN_COMPOSER
        elif src.composer == "@parent":
            composer = normalize_composer(p.parent.name) if len(parts) > 1 else UNKNOWN_COMPOSER
        elif src.composer == "@kern":
            composer = match_composer(kern_composer(p), known)
        elif src.composer.startswith("@"):
            raise RecipeError(f"source {src.name}: unknown composer rule {src.composer!r}")
        else:
            composer = normalize_composer(src.composer)
        if src.work == "@folder":
            work = "/".join(parts[:-1]) or p.stem
        elif src.work == "@stem":
            work = p.stem
        elif src.work == "@stem-prefix":
            work = p.stem.split("-", 1)[0]
        else:
            raise RecipeError(f"source {src.name}: unknown work rule {src.work!r}")
        for pattern, repl in src.work_rules:
            m = re.fullmatch(pattern, work)
            if m:
                work = m.expand(repl)
                break
        else:
            work = f"{src.name}:{work}"
        out.append(CorpusFile(f"{src.name}/{rel}", p, composer, work, src.timing, src.name))
    return out


def list_recipe(recipe: Recipe, base: Path) -> list[CorpusFile]:
    """All files of the recipe's enabled sources; rare composers become unknown."""
    known = [normalize_composer(c) for c in recipe.known_composers]
    files = [f for s in recipe.sources if s.enabled for f in list_source(s, base, known)]
    counts: dict[str, int] = {}
    for f in files:
        counts[f.composer] = counts.get(f.composer, 0) + 1
    rare = {c for c, n in counts.items() if n < recipe.min_composer_files}
    return [CorpusFile(f.rel, f.path, UNKNOWN_COMPOSER if f.composer in rare else f.composer, f.work, f.timing,
                       f.source) for f in files]
