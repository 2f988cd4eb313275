"""The library's object (maia/library.py): maia.load(name) -> pieces in, pieces out, the same music as the
functional layer underneath, and the README's example run as written."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, assert_valid_piece

import maia
from maia import form
from maia.checkpoint import CheckpointError
from maia.compose import compose
from maia.encoding import Piece, read
from maia.errors import InputError
from maia.generate import SamplingConfig, build_prompt, generate_ids, ids_to_piece
from maia.limits import Limits
from maia.scoring import score_piece

README = ROOT / "README.md"


@pytest.fixture(scope="module")
def fim(tiny_models_dir):
    return maia.load("fim", limits=Limits(models_dir=str(tiny_models_dir)), device="cpu")


def library_snippet() -> str:
    """The first Python block under the README's "As a library"."""
    section = README.read_text().split("## As a library", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_as_written(tiny_models_dir, tmp_path, monkeypatch):
    """The README's snippet, unchanged, against a tiny fill-in-the-middle model installed as "piano"."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "piano").symlink_to(tiny_models_dir / "fim")
    work = tmp_path / "work"
    work.mkdir()
    (work / "assets").symlink_to(ROOT / "assets")  # the snippet names assets/prompts/... from the repository root
    monkeypatch.chdir(work)
    monkeypatch.setenv("MAIA_MODELS_DIR", str(models))
    monkeypatch.setenv("MAIA_DEVICE", "cpu")
    snippet = library_snippet()
    assert len([line for line in snippet.splitlines() if line.strip()]) <= 4  # import + three lines
    exec(compile(snippet, "README.md", "exec"), {})
    out = read(work / "lacrimosa_continued.mid")
    prompt = read(ROOT / "assets/prompts/lacrimosa.mid")
    assert len(out) > len(prompt) and out.end_step > prompt.end_step


def test_readme_names_are_exported():
    names = set(re.findall(r"\bmaia\.(\w+)\(", library_snippet()))
    assert names and names <= set(maia.__all__)
    for name in maia.__all__:
        assert getattr(maia, name) is not None


def test_import_maia_stays_cheap():
    code = "import sys, maia; maia.load; assert 'torch' not in sys.modules, 'import maia loaded torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_continue_is_the_functional_layer(fim, tiny_midi):
    """Same prompt, seed and settings: the same notes as build_prompt + generate_ids + ids_to_piece."""
    piece = fim.continue_(tiny_midi, composer="bach", tokens=40, seed=3, top_k=8)
    model, vocab = fim.model, fim.vocab
    prompt = build_prompt(vocab, "bach", read(tiny_midi, vocab.config))
    (ids,) = generate_ids(model, prompt.ids, SamplingConfig(max_new_tokens=40, seed=3, top_k=8), vocab)
    want = ids_to_piece(ids, vocab, prompt)
    assert isinstance(piece, Piece)
    np.testing.assert_array_equal(piece.notes, want.notes)
    assert piece.tempo_qpm == pytest.approx(90.0, rel=1e-5) and piece.time_signature == (3, 4)  # the prompt's
    prompt_notes = read(tiny_midi, vocab.config).notes
    np.testing.assert_array_equal(piece.notes[: len(prompt_notes), 2], prompt_notes[:, 2])  # the prompt comes first


def test_continue_variations_and_from_nothing(fim):
    pieces = fim.continue_(tokens=24, seed=1, variations=2)
    assert isinstance(pieces, list) and len(pieces) == 2
    for p in pieces:
        assert_valid_piece(p)
    again = fim.continue_(tokens=24, seed=1)
    np.testing.assert_array_equal(again.notes, fim.continue_(tokens=24, seed=1).notes)  # a seed gives the same music


def test_continue_bars_goes_through_compose(fim, tiny_midi):
    """bars= / end= are maia.compose.compose's: the same piece, ending within the bars asked for."""
    piece = fim.continue_(tiny_midi, composer="mozart", bars=2, end=True, seed=2)
    prompt = build_prompt(fim.vocab, "mozart", read(tiny_midi, fim.vocab.config))
    ((want, ending),) = compose(fim.model, fim.vocab, prompt, SamplingConfig(seed=2), 2, None, True, None,
                                     read(tiny_midi, fim.vocab.config))
    np.testing.assert_array_equal(piece.notes, want.notes)
    assert ending is not None
    bar = form.bar_steps((3, 4))
    assert piece.end_step <= prompt.steps + (-prompt.steps) % bar + 2 * bar
    picked = fim.continue_(tiny_midi, composer="mozart", bars=2, end=True, seed=2, key_candidates=3)
    ((want, _),) = compose(fim.model, fim.vocab, prompt, SamplingConfig(seed=2), 2, None, True, None,
                                read(tiny_midi, fim.vocab.config), key_candidates=3)
    np.testing.assert_array_equal(picked.notes, want.notes)


def test_continue_end_needs_a_length(fim):
    with pytest.raises(InputError, match="bars="):
        fim.continue_(end=True)


def test_infill_keeps_the_rest(fim, tiny_midi):
    original = read(tiny_midi, fim.vocab.config)
    q = original.steps_per_quarter
    out = fim.infill(tiny_midi, 1, 3, composer="chopin", seed=4, tokens=24)
    assert_valid_piece(out)
    outside = lambda n: n[(n[:, 0] < q) | (n[:, 0] >= 3 * q)]  # noqa: E731
    kept = outside(out.notes)
    # Kept notes keep onset, pitch and velocity; a kept note is only shortened where a new one strikes its key.
    np.testing.assert_array_equal(kept[:, [0, 2, 3]], outside(original.notes)[:, [0, 2, 3]])
    assert (out.tempo_qpm, out.time_signature) == (original.tempo_qpm, original.time_signature)


def test_infill_needs_a_fim_model(tiny_models_dir, tiny_midi):
    gpt = maia.load("gpt", limits=Limits(models_dir=str(tiny_models_dir)), device="cpu")
    with pytest.raises(InputError, match="fill in the middle"):
        gpt.infill(tiny_midi, 1, 2)


def test_score_is_score_piece(fim, tiny_midi):
    got = fim.score(tiny_midi, composer="bach")
    want = score_piece(fim.model, fim.vocab, read(tiny_midi, fim.vocab.config), "bach", 64)
    assert got["bits_per_note"] == pytest.approx(want["bits_per_note"]) and got["notes"] == 12


def test_load_by_folder_and_unknown_name(tiny_models_dir):
    by_folder = maia.load(tiny_models_dir / "lstm", limits=Limits(), device="cpu")
    assert by_folder.name == "lstm" and by_folder.config["kind"] == "lstm" and "bach" in by_folder.composers
    with pytest.raises(CheckpointError, match="found: fim, gpt, lstm"):
        maia.load("nonesuch", limits=Limits(models_dir=str(tiny_models_dir)))
