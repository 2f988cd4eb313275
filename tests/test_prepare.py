"""Tests for multi-source corpus preparation: recipes, composer rules, work ids, near-duplicate works and
the work-grouped split (training/sources.py, training/dedup.py, training/prepare.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maia.encoding import Piece
from training import prepare as prep
from training.dedup import group_works, jaccard, near_duplicates, shingles
from training.sources import RecipeError, list_recipe, match_composer, recipe_from_dict

KNOWN = ["beethoven", "chopin", "mozart", "schubert"]


def melody(seed: int, n: int = 60, shift: int = 0) -> Piece:
    """A random melody over a held bass: n quarter notes, reproducible by seed."""
    rng = np.random.default_rng(seed)
    pitches = 60 + np.cumsum(rng.integers(-4, 5, n)) % 24 + shift
    notes = [(12 * i, 12, int(p), 80) for i, p in enumerate(pitches)] + [(0, 12 * n, 36 + shift, 60)]
    notes = np.array(sorted(notes, key=lambda x: (x[0], x[2])), np.int64)
    return Piece(notes, 12, 100.0, (4, 4))


KERN = """!!!COM: {com}
**kern\t**kern
*clefF4\t*clefG2
*M4/4\t*M4/4
=1\t=1
4C\t4c
4D\t4d
4E\t4e
4F\t4f
=2\t=2
1G\t1g
*-\t*-
"""


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A miniature of the piano corpus: ASAP-like folders (a score and a performance per work, a Beethoven
    sonata movement with and without its repeat), kern files of the same sonata and of Chopin credited
    in three spellings, and pop songs of which one is a transposed near-copy of an ASAP work."""
    root = tmp_path_factory.mktemp("raw")
    for composer, work, seed in (("Beethoven", "Piano_Sonatas/24-1", 1), ("Beethoven", "Piano_Sonatas/24-1_no_repeat", 1),
                                 ("Schubert", "Impromptu/2", 2), ("Schubert", "Impromptu/3", 3)):
        d = root / "asap" / composer / work
        d.mkdir(parents=True)
        melody(seed).write_midi(d / "midi_score.mid")
        melody(seed).write_midi(d / "Player01.mid")
    (root / "kern" / "beethoven").mkdir(parents=True)
    (root / "kern" / "beethoven" / "sonata24-1.krn").write_text(KERN.format(com="Beethoven, Ludwig van"))
    (root / "kern" / "chopin").mkdir(parents=True)
    for name, com in (("001-1-BRZ", "F. Chopin"), ("001-1a-HO", "Chopin, Fryderyk"), ("002-1-Sm", "Fryderyk Chopipn")):
        (root / "kern" / "chopin" / f"{name}.krn").write_text(KERN.format(com=com))
    (root / "pop").mkdir()
    for i in range(6):
        melody(100 + i).write_midi(root / "pop" / f"{i:03d}.mid")
    melody(3, shift=5).write_midi(root / "pop" / "900.mid")  # Schubert's Impromptu/3, up a fourth
    return root


RECIPE = {
    "known_composers": KNOWN,
    "min_composer_files": 1,
    "valid_percent": 50,
    "dedup_threshold": 0.3,
    "sources": [
        {"name": "asap", "root": "asap", "include": ["**/midi_score.mid"], "composer": "@folder", "work": "@folder",
         "work_rules": [[r"Beethoven/Piano_Sonatas/(\d+)-(\d+).*", r"beethoven-sonata-\1-\2"], [r"(.*?)(_no_\w+)?", r"asap:\1"]]},
        {"name": "asap-perf", "root": "asap", "include": ["**/*.mid"], "exclude": ["**/midi_score.mid"],
         "timing": "performance", "composer": "@folder", "work": "@folder",
         "work_rules": [[r"Beethoven/Piano_Sonatas/(\d+)-(\d+).*", r"beethoven-sonata-\1-\2"], [r"(.*?)(_no_\w+)?", r"asap:\1"]]},
        {"name": "kern-beethoven", "root": "kern/beethoven", "include": ["*.krn"], "composer": "@kern",
         "work_rules": [[r"sonata0*(\d+)-(\d+)[a-z]?", r"beethoven-sonata-\1-\2"]]},
        {"name": "kern-chopin", "root": "kern/chopin", "include": ["*.krn"], "composer": "@kern", "work": "@stem-prefix"},
        {"name": "pop", "root": "pop", "include": ["*.mid"], "composer": "pop"},
    ],
}


def test_composer_rules_and_work_ids(raw):
    files = {f.rel: f for f in list_recipe(recipe_from_dict(RECIPE, "mini"), raw)}
    assert files["asap/Beethoven/Piano_Sonatas/24-1/midi_score.mid"].composer == "beethoven"
    assert files["asap-perf/Schubert/Impromptu/2/Player01.mid"].timing == "performance"
    assert {files[f"kern-chopin/{n}.krn"].composer for n in ("001-1-BRZ", "001-1a-HO", "002-1-Sm")} == {"chopin"}
    assert files["kern-beethoven/sonata24-1.krn"].composer == "beethoven"
    assert files["pop/000.mid"].composer == "pop"
    # one sonata movement: ASAP with and without its repeat, its performance, and the kern file
    sonata = {f.work for r, f in files.items() if "24-1" in r}
    assert sonata == {"beethoven-sonata-24-1"}
    assert files["kern-chopin/001-1-BRZ.krn"].work == files["kern-chopin/001-1a-HO.krn"].work != files["kern-chopin/002-1-Sm.krn"].work


@pytest.mark.parametrize("credit,expected", [("Chopin, Fryderyk", "chopin"), ("[Chopin, Fryderyk]", "chopin"),
                                             ("Fr. Chopin", "chopin"), ("Fryderyk Chopipn", "chopin"),
                                             ("Mozart, Wolfgang Amadeus", "mozart"), ("Carl Czerny", "czerny"),
                                             ("Czerny, Carl", "czerny"), (None, "unknown")])
def test_match_composer(credit, expected):
    assert match_composer(credit, KNOWN) == expected


def test_rare_composers_become_unknown(raw):
    recipe = recipe_from_dict({**RECIPE, "min_composer_files": 3}, "mini")
    composers = {f.rel: f.composer for f in list_recipe(recipe, raw)}
    assert composers["kern-beethoven/sonata24-1.krn"] == "beethoven"  # 5 Beethoven files in all
    assert set(composers.values()) == {"beethoven", "schubert", "chopin", "pop"}
    recipe = recipe_from_dict({**RECIPE, "min_composer_files": 4}, "mini")
    assert {f.composer for f in list_recipe(recipe, raw) if f.source == "kern-chopin"} == {"unknown"}


def test_recipe_errors_name_the_problem(raw):
    with pytest.raises(RecipeError, match=r"unknown keys \['colour'\]"):
        recipe_from_dict({**RECIPE, "colour": 1}, "mini")
    with pytest.raises(RecipeError, match="timing"):
        recipe_from_dict({"sources": [{"name": "a", "root": "a", "timing": "live"}]}, "mini")
    with pytest.raises(RecipeError, match="folder nowhere not found"):
        list_recipe(recipe_from_dict({"sources": [{"name": "a", "root": "nowhere"}]}, "mini"), raw)


def test_shingles_are_transposition_proof_and_tell_works_apart():
    a, a_up, b = (shingles(melody(s, shift=k).notes) for s, k in ((7, 0), (7, 5), (8, 0)))
    assert len(a) > 40 and jaccard(a, a_up) == 1.0
    assert jaccard(a, b) < 0.05
    edited = melody(7).notes.copy()
    edited[30, 2] += 1  # one wrong note: the shingles through it change, the rest stay
    assert 0.5 < jaccard(a, shingles(edited)) < 1.0


def test_near_duplicates_found_without_false_pairs():
    sets = [shingles(melody(s).notes) for s in range(40)] + [shingles(melody(5, shift=3).notes)]
    pairs = near_duplicates(sets, 0.3)
    assert [(i, j) for i, j, _ in pairs] == [(5, 40)]
    groups, merged = group_works([f"w{i}" for i in range(41)], sets, 0.3)
    assert groups[40] == groups[5] == "w40" and len(merged) == 1  # the smaller id names the group


def test_prepare_groups_works_and_keeps_every_copy_in_one_split(raw, tmp_path):
    recipe = recipe_from_dict(RECIPE, "mini")
    files = list_recipe(recipe, raw)
    s = prep.prepare(files, tmp_path, prep.EncodingConfig(), workers=1, quiet=True, valid_percent=50,
                     dedup_threshold=0.3)
    assert not s["skipped"] and s["pieces"] == len(files)
    index = json.loads((tmp_path / "index.json").read_text())
    by_path = {e["path"]: e for e in index}
    # the pop song that copies Schubert's Impromptu/3 joined its group, and so its split
    assert by_path["pop/900.mid"]["group"] == by_path["asap/Schubert/Impromptu/3/midi_score.mid"]["group"]
    for group in {e["group"] for e in index}:
        assert len({e["split"] for e in index if e["group"] == group}) == 1, group
    assert {"train", "valid"} == {e["split"] for e in index}
    # no held-out work has a near-copy in training, checked from the tokens' notes independently of prepare
    for e in index:
        assert {"source", "composer", "work", "timing", "tempo", "split"} <= set(e)
    assert s["dedup"]["cross_split_near_copies"] == []
    assert "| pop |" in (tmp_path / "summary.md").read_text() and "| asap-perf |" in (tmp_path / "summary.md").read_text()


def test_held_out_works_have_no_near_copy_in_training(raw, tmp_path):
    """Decodes the prepared tokens and compares every held-out piece with every training piece."""
    from maia.encoding import decode_ids
    from training.data import Corpus

    files = list_recipe(recipe_from_dict(RECIPE, "mini"), raw)
    prep.prepare(files, tmp_path, prep.EncodingConfig(), workers=1, quiet=True, valid_percent=50, dedup_threshold=0.3)
    corpus = Corpus.load(tmp_path)
    sets = {k: [shingles(decode_ids(p, corpus.vocab).notes) for p in corpus.pieces(k)] for k in ("train", "valid")}
    assert sets["train"] and sets["valid"]
    worst = max(jaccard(v, t) for v in sets["valid"] for t in sets["train"])
    assert worst < 0.3


def test_prepare_without_dedup_leaks_the_copy(raw, tmp_path):
    """The same corpus split by work ids alone: the test above must be able to fail."""
    files = list_recipe(recipe_from_dict(RECIPE, "mini"), raw)
    s = prep.prepare(files, tmp_path, prep.EncodingConfig(), workers=1, quiet=True, valid_percent=50,
                     dedup_threshold=None)
    index = {e["path"]: e for e in json.loads((tmp_path / "index.json").read_text())}
    assert s["dedup"]["threshold"] is None
    assert index["pop/900.mid"]["group"] != index["asap/Schubert/Impromptu/3/midi_score.mid"]["group"]


def test_cli_recipe_and_repeatable_sources(raw, tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "mini.toml"
    recipe.write_text('known_composers = ["beethoven"]\n[[sources]]\nname = "pop"\nroot = "pop"\ncomposer = "pop"\n'
                      '[[sources]]\nname = "kb"\nroot = "kern/beethoven"\ncomposer = "@kern"\nenabled = false\n')
    monkeypatch.chdir(raw)
    assert prep.main(["--recipe", str(recipe), "--out", str(tmp_path / "a"), "--workers", "1", "--quiet"]) == 0
    assert "| pop |" in capsys.readouterr().out
    assert prep.main(["--recipe", str(recipe), "--enable", "kb", "--out", str(tmp_path / "b"), "--workers", "1",
                      "--quiet"]) == 0
    assert "| beethoven |" in capsys.readouterr().out
    assert prep.main(["--source", "pop", "--source", "kern", "--out", str(tmp_path / "c"), "--workers", "1", "--quiet"]) == 0
    paths = [e["path"] for e in json.loads((tmp_path / "c" / "index.json").read_text())]
    assert any(p.startswith("pop/") for p in paths) and any(p.startswith("kern/") for p in paths)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sources]]\nname = "x"\nroot = "pop"\nwrok = "@stem"\n')
    assert prep.main(["--recipe", str(bad), "--out", str(tmp_path / "d")]) == 1
    assert "unknown keys ['wrok']" in capsys.readouterr().err
