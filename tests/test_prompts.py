"""Tests for the example prompts in assets/prompts/: the scripts rebuild them byte for byte, and the Lacrimosa
is what its docstring says (8 bars of 12/8 in D minor, crescendo, ending on the dominant)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maia.encoding import read

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PROMPTS = ASSETS / "prompts"
BAR = 72  # grid steps in a 12/8 bar: 12 eighths of 6 steps


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    subprocess.run([sys.executable, str(ASSETS / "make_prompts.py"), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def lacrimosa():
    return read(PROMPTS / "lacrimosa.mid")


def test_scripts_rebuild_every_prompt_byte_for_byte(rebuilt):
    shipped = sorted(p.name for p in PROMPTS.glob("*.mid"))
    assert "lacrimosa.mid" in shipped and sorted(p.name for p in rebuilt.glob("*.mid")) == shipped
    for name in shipped:
        assert (rebuilt / name).read_bytes() == (PROMPTS / name).read_bytes(), name


def test_make_lacrimosa_alone(tmp_path):
    subprocess.run([sys.executable, str(ASSETS / "make_lacrimosa.py"), str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "lacrimosa.mid").read_bytes() == (PROMPTS / "lacrimosa.mid").read_bytes()


def test_readme_describes_every_prompt():
    readme = (PROMPTS / "README.md").read_text()
    for path in PROMPTS.glob("*.mid"):
        assert path.name in readme


def test_lacrimosa_meter_tempo_length(lacrimosa):
    assert lacrimosa.time_signature == (12, 8)
    assert lacrimosa.tempo_qpm == pytest.approx(60.0)
    assert lacrimosa.steps_per_quarter == 12
    assert lacrimosa.notes[:, 0].min() == 0  # no pickup
    assert lacrimosa.end_step == 8 * BAR == 576
    assert lacrimosa.duration_seconds == pytest.approx(48.0)


def test_lacrimosa_is_in_d_minor():
    import music21

    key = music21.converter.parse(str(PROMPTS / "lacrimosa.mid")).analyze("key")
    assert (key.tonic.name, key.mode) == ("D", "minor")


def test_lacrimosa_shape(lacrimosa):
    n = lacrimosa.notes
    onset, pitch, vel = n[:, 0], n[:, 2], n[:, 3]
    # The introduction is strings only, above the bass: it enters with the choir in bar 3, on D.
    assert pitch[onset < 2 * BAR].min() >= 55
    assert pitch[onset == 2 * BAR].min() == 38  # D2
    assert 69 in pitch[onset == 2 * BAR]  # the sopranos' "La-" on A4
    # "judicandus homo reus": the top voice climbs a semitone on each dotted quarter, Eb5 to A5.
    beats = 6 * BAR + 18 * np.arange(7)
    assert [int(pitch[onset == b].max()) for b in beats] == list(range(75, 82))
    # The last chord is A major (the dominant) over A in the bass.
    last = n[onset >= 8 * BAR - 18]
    assert {int(p) % 12 for p in last[:, 2]} <= {9, 1, 4} and {9, 1} <= {int(p) % 12 for p in last[:, 2]}
    assert last[:, 2].min() % 12 == 9
    # p for bars 1-6, crescendo to f in bar 8.
    assert vel[onset >= 7 * BAR].mean() > vel[onset < 6 * BAR].mean() + 25


@pytest.mark.parametrize("name, ts, bars", [("bach_chorale_bwv66_6", (4, 4), 8), ("joplin_maple_leaf_rag", (2, 4), 8)])
def test_corpus_prompts(name, ts, bars):
    piece = read(PROMPTS / f"{name}.mid")
    assert piece.time_signature == ts
    bar = ts[0] * 4 * piece.steps_per_quarter // ts[1]
    assert piece.notes[:, 0].min() == 0 and piece.end_step == bars * bar
    assert len(piece) > 50
