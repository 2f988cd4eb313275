"""maia.gallery.shelf: maia's works are composed once, with fixed seeds, and form the listening room's pairs."""

from __future__ import annotations

from maia.gallery.shelf import Work, seed
from maia.gallery.store import Gallery
from maia.limits import Limits

WORKS = (Work("Lacrimosa by the tiny GPT", "lacrimosa.mid", "mozart", "gpt"),
         Work("Lacrimosa by the tiny LSTM", "lacrimosa.mid", "mozart", "lstm"))


def test_seed_composes_once_and_makes_a_pair(tmp_path, tiny_models_dir):
    limits = Limits(models_dir=str(tiny_models_dir), device="cpu", data_dir=str(tmp_path))
    g = Gallery.open(limits)
    lines = []
    added = seed(g, limits, tokens=16, works=WORKS, progress=lines.append)
    assert len(added) == 2 and g.counts()["pieces"] == 2
    p = g.get(added[0])
    assert p.shelf and p.seed == 1 and "example=lacrimosa.mid" in p.link and p.files["midi"].is_file()
    assert p.prompt == "example:lacrimosa.mid · mozart" and p.variant == "gpt · top-k 5 · T 1"
    again = seed(g, limits, tokens=16, works=WORKS, progress=lines.append)
    assert again == [] and g.counts()["pieces"] == 2 and sum("already there" in x for x in lines) == 2
    if "wav" in p.files:  # FluidSynth installed: the two make a pair of the listening room
        assert {x.uid for x in g.next_pair("t" * 32)} == set(added)
