"""maia/notation.py: a pianist can read the MusicXML (grand staff, key, meter, tempo, title) and Verovio
engraves it to SVG."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from maia.encoding import Piece, read
from maia.notation import engrave, musicxml, write_musicxml

LACRIMOSA = Path(__file__).resolve().parents[1] / "assets" / "prompts" / "lacrimosa.mid"


def test_lacrimosa_is_a_grand_staff_in_d_minor_and_12_8():
    xml = musicxml(read(LACRIMOSA), title="Lacrimosa & co", subtitle="model piano, seed 3")
    assert re.findall(r"<fifths>(-?\d+)</fifths>", xml)[0] == "-1"  # one flat: D minor
    assert "<staves>2</staves>" in xml and "<staff>2</staff>" in xml  # two staves of one piano part
    assert re.findall(r"<sign>(\w)</sign>", xml)[:2] == ["G", "F"]
    assert "<beats>12</beats>" in xml and "<beat-type>8</beat-type>" in xml
    assert "<per-minute>" in xml and "Lacrimosa &amp; co" in xml and "Music21 Fragment" not in xml
    # every note of the right hand is at or above middle C, every note of the left hand below it
    parts = xml.split("<backup>")
    assert len(parts) > 1


def test_hands_split_at_middle_c_and_nothing_is_lost(tmp_path):
    rng = np.random.default_rng(0)
    onset = np.repeat(np.arange(0, 96, 12), 3)
    pitch = np.concatenate([[40 + k, 55 + k, 72 + k] for k in range(8)])
    notes = np.stack([onset, np.full_like(onset, 12), pitch, rng.integers(40, 100, len(onset))], 1)
    piece = Piece(notes[np.lexsort((notes[:, 2], notes[:, 0]))].astype(np.int64), 12, 100.0, (4, 4))
    path = write_musicxml(piece, tmp_path / "x.musicxml", title="t")
    xml = path.read_text()
    staff_of = {}
    for note in re.findall(r"<note.*?</note>", xml, flags=re.S):
        step, octave = re.search(r"<step>(\w)</step>", note), re.search(r"<octave>(\d)</octave>", note)
        staff = re.search(r"<staff>(\d)</staff>", note)
        if step and staff:
            midi = 12 * (int(octave.group(1)) + 1) + "C D EF G A B".index(step.group(1))
            alter = re.search(r"<alter>(-?\d)</alter>", note)
            staff_of.setdefault(int(staff.group(1)), []).append(midi + (int(alter.group(1)) if alter else 0))
    assert min(staff_of[1]) >= 60 and max(staff_of[2]) < 60
    assert len(staff_of[1]) + len(staff_of[2]) == len(piece)


def test_engrave_gives_svg_pages_with_the_title():
    pages = engrave(musicxml(read(LACRIMOSA), title="Lacrimosa", subtitle="seed 3"))
    assert pages and all(p.lstrip().startswith("<svg") or "<svg" in p[:300] for p in pages)
    assert "Lacrimosa" in pages[0] and pages[0].count('class="staff') >= 2


def test_both_hands_keep_the_time_signature_and_the_sheet_follows_the_audio_clock():
    """Both staves of a 12/8 piece have 12/8 bars (music21 once gave the second track 4/4, so the left
    hand's bars held 4 quarters and the score ran 1.5 times too long), and the timemap of the engraved
    sheet ends where the piece does, in seconds."""
    from music21 import stream

    from maia.notation import sheet, to_music21

    piece = read(LACRIMOSA)
    for part in to_music21(piece).parts:
        bars = list(part.getElementsByClass(stream.Measure))
        assert bars and all(m.barDuration.quarterLength == 6.0 for m in bars)
        assert part.highestTime == piece.end_step / piece.steps_per_quarter
    view = sheet(musicxml(piece), seconds_per_quarter=60.0 / piece.tempo_qpm)
    assert len(view["pages"]) >= 1 and view["pages"][0].lstrip().startswith("<svg")
    times = [t for t, _ in view["timemap"]]
    assert times == sorted(times) and abs(times[-1] - piece.duration_seconds) < 0.01
    ids = {i for _, sounding in view["timemap"] for i in sounding}
    assert ids and all(f'id="{i}"' in "".join(view["pages"]) for i in ids)
    assert view["timemap"][-1][1] == []  # everything released at the end


def test_engraving_from_other_threads_at_once_gives_every_thread_its_pages():
    """A server engraves on its worker threads, several at once. verovio.toolkit() finds its fonts only in
    the thread that imported verovio: elsewhere every engraving failed, and the sheet music was lost."""
    from concurrent.futures import ThreadPoolExecutor

    from maia.notation import sheet

    xml = musicxml(read(LACRIMOSA), title="Lacrimosa")
    alone = sheet(xml, 0.5)
    with ThreadPoolExecutor(4) as pool:
        views = list(pool.map(lambda _: sheet(xml, 0.5), range(8)))
    def shape(view):  # Verovio's note ids are random per toolkit: compare times and counts
        return len(view["pages"]), [(t, len(ids)) for t, ids in view["timemap"]]

    assert all(shape(v) == shape(alone) for v in views)


def test_the_export_made_in_place_is_music21s_own():
    """musicxml exports the score it builds without music21's protective deep copy (maia.notation._export): the
    MusicXML must be what GeneralObjectExporter(score).parse() writes, but for music21's random part ids, for the
    Lacrimosa and for a piece with notes held across bar lines and overlapping in one hand (voices, ties, rests)."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from maia.notation import _export, to_music21

    rng = np.random.default_rng(1)
    onset = np.sort(rng.integers(0, 12 * 16, 60))
    notes = np.stack([onset, rng.integers(3, 40, 60), rng.integers(36, 84, 60), rng.integers(30, 110, 60)], 1)
    held = Piece(notes[np.lexsort((notes[:, 2], notes[:, 0]))].astype(np.int64), 12, 96.0, (3, 4))
    ids = re.compile(r'id="[^"]*"|<encoding-date>.*?</encoding-date>')
    for piece in (read(LACRIMOSA), held):
        ours = _export(to_music21(piece, title="t")).decode()
        theirs = GeneralObjectExporter(to_music21(piece, title="t")).parse().decode()
        assert ids.sub("", ours) == ids.sub("", theirs)
        assert ours.count("<note") == theirs.count("<note") > len(piece.notes) // 2
