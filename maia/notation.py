"""Sheet music for a piece: a piano grand staff in MusicXML (music21), engraved to SVG pages (Verovio).

    xml = musicxml(piece, title="maia — continuation of the Lacrimosa", subtitle="model piano, seed 3")
    pages = engrave(xml)                       # one SVG string per page
    view = sheet(xml, seconds_per_quarter=0.5) # the pages, and which notes sound when (for a playhead)

The right hand takes the notes from middle C up and the left hand those below, each on its own staff of
one braced grand staff (treble and bass clef). The key signature is the piece's estimated key
(Krumhansl-Schmuckler, maia.metrics.estimate_key), the time signature and tempo those the piece carries
(4/4 and its tempo when it has none). Each hand is written as its own MIDI file and read back by
music21's MIDI reader, which already turns overlapping notes into chords and voices and notates measures
and ties; this module then makes the two parts a piano.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maia.encoding import Piece
from maia.metrics import estimate_key

SPLIT = 60  # middle C and above: right hand


def _hand_midi(piece: Piece, notes: np.ndarray) -> bytes:
    """A one-track MIDI file of ``notes`` with the piece's tempo and time signature. Each hand is its own
    file: music21 gives the time signature of a multi-track file to its first part only, and notates
    the others in 4/4."""
    from symusic import Note, Score, Tempo, TimeSignature, Track

    ticks = 40
    score = Score(piece.steps_per_quarter * ticks)
    score.tempos.append(Tempo(0, qpm=float(piece.tempo_qpm)))
    num, den = piece.time_signature or (4, 4)
    score.time_signatures.append(TimeSignature(0, num, den))
    track = Track(name="Piano", program=0, is_drum=False)
    track.notes = Note.from_numpy(time=(notes[:, 0] * ticks).astype(np.int32), duration=(notes[:, 1] * ticks).astype(np.int32),
                                  pitch=notes[:, 2].astype(np.int8), velocity=notes[:, 3].astype(np.int8))
    score.tracks.append(track)
    return bytes(score.dumps_midi())


MAJOR_NAMES = ["C", "D-", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B"]  # the signature with fewer accidentals
MINOR_NAMES = ["c", "c#", "d", "e-", "e", "f", "f#", "g", "g#", "a", "b-", "b"]


def _spell_in_key(part, signature) -> None:
    """Spells every pitch of ``part`` as ``signature``'s key does (F# in D major, Db under four flats; the raised
    sixth and seventh of a minor key as such), the other black keys with the signature's sharps or flats, then
    marks only the accidentals that the signature and the bar do not already give."""
    from music21 import scale
    from music21.stream.makeNotation import makeAccidentalsInMeasureStream

    spelling = {p.pitchClass: p.name for p in signature.getPitches()}
    if signature.mode == "minor":  # the leading tone and the raised sixth (melodic minor)
        raised = scale.MajorScale(signature.tonic)  # melodic minor, ascending: the major scale's sixth and seventh
        for degree in (6, 7):
            p = raised.pitchFromDegree(degree)
            spelling.setdefault(p.pitchClass, p.name)
    flats = signature.sharps < 0
    for pc, name in enumerate(["C", "D-" if flats else "C#", "D", "E-", "E", "F", "G-" if flats else "F#", "G",
                               "A-" if flats else "G#", "A", "B-", "B"]):
        spelling.setdefault(pc, name)
    for n in part.recurse().notes:
        for p in n.pitches:
            ps = p.ps
            p.name = spelling[p.pitchClass]
            p.octave += round((ps - p.ps) / 12)  # the same key, now spelt in the key
            if p.accidental is not None:
                p.accidental.displayStatus = None
    makeAccidentalsInMeasureStream(part, useKeySignature=signature, overrideStatus=True,
                                   cautionaryNotImmediateRepeat=False)


def to_music21(piece: Piece, title: str = "", subtitle: str = "", composer: str = "maia",
               key_lock: tuple[int, str] | None = None):
    """The piece as a music21 Score: a braced grand staff with clefs, key and time signatures, tempo and
    title. The key signature is ``key_lock`` (tonic pitch class, mode) when given, else the estimated key."""
    from music21 import clef, converter, key, layout, metadata, meter, stream, tempo

    n = piece.notes
    hands = [(h, n[m]) for h, m in (("right", n[:, 2] >= SPLIT), ("left", n[:, 2] < SPLIT)) if m.any()]
    parts = [converter.parseData(_hand_midi(piece, notes), format="midi", quantizePost=True).parts[0]
             for _, notes in hands]
    tonic, mode = key_lock if key_lock is not None else estimate_key(piece)[:2]
    num, den = piece.time_signature or (4, 4)
    score = stream.Score()
    staffs = []
    for part, (hand, _) in zip(parts, hands, strict=True):
        # The parsed part, made a staff of the grand staff in place: copying its measures into a new
        # PartStaff leaves them owned by two streams, which music21's tie-making then trips over.
        part.__class__ = stream.PartStaff
        part.partName = "Piano" if hand == "right" else ""
        for el in list(part.recurse().getElementsByClass(("Clef", "KeySignature", "TimeSignature", "MetronomeMark"))):
            el.activeSite.remove(el)
        first = part.getElementsByClass(stream.Measure).first() or part
        first.insert(0, clef.TrebleClef() if hand == "right" else clef.BassClef())
        if tonic >= 0:
            names = MAJOR_NAMES if mode == "major" else MINOR_NAMES
            signature = key.Key(names[tonic], mode)
            first.insert(0, signature)
            _spell_in_key(part, signature)
        first.insert(0, meter.TimeSignature(f"{num}/{den}"))
        if hand == "right" or len(hands) == 1:
            first.insert(0, tempo.MetronomeMark(number=round(piece.tempo_qpm)))
        staffs.append(part)
        score.insert(0, part)
    if len(staffs) == 2:
        score.insert(0, layout.StaffGroup(staffs, name="Piano", abbreviation="Pno.", symbol="brace"))
    score.metadata = metadata.Metadata()
    score.metadata.title = title or "maia"
    score.metadata.movementName = subtitle or None
    score.metadata.composer = composer
    return score


def musicxml(piece: Piece, title: str = "", subtitle: str = "", composer: str = "maia",
             key: tuple[int, str] | None = None) -> str:
    """MusicXML text of ``to_music21``, with the title, subtitle and composer credited on page 1."""
    try:
        data = _export(to_music21(piece, title, subtitle, composer, key))
    except Exception:  # music21's tie-making fails on some notes held across bar lines (StreamException,
        # MusicXMLExportException...): then every note ends at the bar line it would cross, and no tie is needed
        data = _export(to_music21(_clip_at_bar_lines(piece), title, subtitle, composer, key))
    return _with_credits(data.decode("utf-8"), title or "maia", subtitle, composer)


def _export(score) -> bytes:
    """``GeneralObjectExporter(score).parse()`` on the score itself rather than on a deep copy of it (its rests and
    notation made in place): the score is built for this export only, and the copy was 14% of the export's time.
    The MusicXML is the same but for music21's random part ids."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    exporter = GeneralObjectExporter(score)
    score.makeRests(refStreamOrTimeRange=[0.0, score.highestTime], fillGaps=True, inPlace=True, hideRests=True,
                    timeRangeFromBarDuration=True)  # what parse() does, on its copy, before fromScore
    return exporter.parseWellformedObject(exporter.fromScore(score))


def _clip_at_bar_lines(piece: Piece) -> Piece:
    from dataclasses import replace

    num, den = piece.time_signature or (4, 4)
    bar = max(1, piece.steps_per_quarter * 4 * num // den)
    n = piece.notes.copy()
    n[:, 1] = np.minimum(n[:, 0] + n[:, 1], (n[:, 0] // bar + 1) * bar) - n[:, 0]
    return replace(piece, notes=n)


def _with_credits(xml: str, title: str, subtitle: str, composer: str) -> str:
    """Adds page-1 credits (title, subtitle, composer): what engravers (Verovio, MuseScore) print as the
    page's head; music21 writes the title only into <work-title>, which they do not show."""
    from html import escape

    credits = "".join(
        f'<credit page="1"><credit-type>{kind}</credit-type><credit-words default-x="{x}" default-y="{y}" '
        f'justify="{justify}" valign="top" font-size="{size}">{escape(text)}</credit-words></credit>'
        for kind, text, x, y, justify, size in (("title", title, 600, 1500, "center", 22),
                                               ("subtitle", subtitle, 600, 1450, "center", 12),
                                               ("composer", composer, 1150, 1400, "right", 10)) if text)
    return xml.replace("<part-list>", credits + "<part-list>", 1)


def write_musicxml(piece: Piece, path: str | Path, **names) -> Path:
    path = Path(path)
    path.write_text(musicxml(piece, **names), encoding="utf-8")
    return path


def _toolkit(xml: str, width: int, scale: int):
    import verovio

    # The resource path (fonts) that verovio.toolkit() finds is set only in the thread that imported verovio; in
    # any other thread, such as a server's workers, it is the wheel's build folder and every engraving fails
    # ("Bravura font could not be loaded"). So each toolkit is pointed at the package's own data.
    tk = verovio.toolkit(False)
    if not tk.setResourcePath(str(Path(verovio.__file__).parent / "data")):
        raise ValueError("Verovio's fonts are missing from its package")
    tk.setOptions({"pageWidth": width, "scale": scale, "adjustPageHeight": True, "footer": "none",
                   "breaks": "auto"})
    if not tk.loadData(xml):
        raise ValueError("Verovio could not read the MusicXML")
    return tk


def engrave(xml: str, width: int = 2100, scale: int = 40) -> list[str]:
    """SVG pages of MusicXML, engraved by Verovio (offline, no fonts to fetch)."""
    tk = _toolkit(xml, width, scale)
    return [tk.renderToSVG(i) for i in range(1, tk.getPageCount() + 1)]


def sheet(xml: str, seconds_per_quarter: float, width: int = 2100, scale: int = 40) -> dict:
    """The engraved pages and, for following the music, when each note sounds:
    {"pages": [svg, ...], "timemap": [[seconds, [ids of the notes sounding from then]], ...]}, where
    the ids are those of the notes' ``<g class="note">`` elements in the SVG. Times come from
    Verovio's timemap in quarter notes, at ``seconds_per_quarter``."""
    tk = _toolkit(xml, width, scale)
    pages = [tk.renderToSVG(i) for i in range(1, tk.getPageCount() + 1)]
    sounding: set[str] = set()
    timemap = []
    for entry in tk.renderToTimemap():
        sounding.difference_update(entry.get("off", []))
        sounding.update(entry.get("on", []))
        timemap.append([round(float(entry["qstamp"]) * seconds_per_quarter, 3), sorted(sounding)])
    return {"pages": pages, "timemap": timemap}


__all__ = ["engrave", "musicxml", "sheet", "to_music21", "write_musicxml"]
