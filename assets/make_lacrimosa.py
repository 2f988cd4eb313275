"""The opening of Mozart's Lacrimosa (Requiem in D minor, K. 626) as a piano reduction: maia's showcase prompt.

Usage: python assets/make_lacrimosa.py [OUT_DIR]      (writes OUT_DIR/lacrimosa.mid, default assets/prompts/)

These are the eight bars Mozart finished: a two-bar string introduction, then the choir on "Lacrimosa dies
illa" (bars 3-4), "qua resurget ex favilla" rising step by step in detached eighths (5-6) and "judicandus homo
reus" climbing chromatically with a crescendo (7-8), ending on the dominant, A major. The score breaks off there.

This is a piano reduction made from memory and by ear, with the choir's notes checked against a public vocal
score: NOT an urtext and not any edition's reduction. Right hand: the violins' sighing pairs of eighths (the
melody in bars 1-2, above the choir later), the soprano line and the alto. Left hand: the viola/second-violin
chords of the introduction, then the bass in octaves (the basso enters with the choir) and the tenor.

Larghetto in 12/8. Mozart gives no metronome mark; dotted quarter = 40 (quarter = 60 qpm) is close to common
recordings (about 3 minutes for the 30 bars of Süssmayr's completion), so the prompt lasts 48 s.
Dynamics: p, crescendo through bar 7, f at bar 8 ("homo reus"), as velocities in the MIDI file.
"""

from __future__ import annotations

import sys
from pathlib import Path

BAR = 12  # eighths in a 12/8 bar
QPM = 60.0  # quarter notes per minute: dotted quarter = 40 (Larghetto)

# Each voice is one line per bar of "PITCH[:EIGHTHS]" tokens (length 1 eighth unless given), "r" is a rest.
VIOLINS = """
r C#5 D5  r A5 B-5  r D5 C#5  r C6 B-5
r A5 D6   r B-5 G5  r E5 F5   r A5 C#5
r C#5 D5  r A5 B-5  r D5 C#5  r B-5 A5
r C#5 D5  r A5 B-5  r D5 C#5  r B-5 A5
r D4 A3   r E4 A3   r F4 D4   r G4 C4
r A4 F4   r B4 E4   r C5 A4   r D5 G4
r E-5 C5  r E5 C5   r F5 C5   r F#5 A4
r G5 F4   r G#5 G#4 r A5 A4   r A4 A3
"""
SOPRANO = """
r:12
r:12
A4:4 F5 D5   D5:3 C#5 r:2
A4:4 F5 D5   D5:3 C#5 r:2
D4 r:2 E4 r:2  F4 r:2 G4 r:2
A4 r:2 B4 r:2  C5 r:2 D5 r:2
E-5:3 E5:3   F5:3 F#5:3
G5:3 G#5:3   A5:3 A4 r:2
"""
ALTO = """
r:12
r:12
F4:4 D4 A4   G4:3 G4 r:2
F4:4 D4 A4   G4:3 G4 r:2
A3 r:2 C#4 r:2  D4 r:2 E4 r:2
F4 r:2 B3 r:2   E4 r:2 G4 r:2
G4:3 G4:3    F4:3 A4:3
G4:3 D5:3    D5:3 C#5 r:2
"""
TENOR = """
r:12
r:12
D4:4 A3 F3   B-3:3 A3 r:2
A3:5 F3      B-3:3 A3 r:2
F3 r:2 A3 r:2   A3 r:2 C4 r:2
C4 r:2 G#3 r:2  A3 r:2 B3 r:2
C4:3 C4:3    C4:3 E-4:3
D4:3 F4:3    F4:3 E4 r:2
"""
# Left hand on the beats (quarter + eighth rest): the inner string chords in bars 1-2, then the bass in octaves.
LH_LOW = """
D4:2 r F4:2 r E4:2 r G4:2 r
F4:2 r G3:2 r A3:2 r A3:2 r
D2:2 r F2:2 r E2:2 r A1:2 r
D2:2 r F2:2 r E2:2 r A1:2 r
D2:2 r A1:2 r D2:2 r C2:2 r
F2:2 r E2:2 r A1:2 r G1:2 r
C2:2 r B-2:2 r A2:2 r C3:2 r
B2:2 r B-2:2 r A2:2 r A1:2 r
"""
LH_HIGH = """
F4:2 r A4:2 r G4:2 r C#5:2 r
D5:2 r E4:2 r D4:2 r G4:2 r
D3:2 r F3:2 r E3:2 r A2:2 r
D3:2 r F3:2 r E3:2 r A2:2 r
D3:2 r A2:2 r D3:2 r C3:2 r
F3:2 r E3:2 r A2:2 r G2:2 r
C3:2 r B-3:2 r A3:2 r C4:2 r
B3:2 r B-3:2 r A3:2 r A2:2 r
"""

# (name, text, hand, velocity offset); the soprano sings over everything, inner voices stay back.
VOICES = [
    ("soprano", SOPRANO, "rh", +12),
    ("violins", VIOLINS, "rh", -6),
    ("alto", ALTO, "rh", -10),
    ("tenor", TENOR, "lh", -10),
    ("bass low", LH_LOW, "lh", -2),
    ("bass high", LH_HIGH, "lh", -6),
]
P, F = 50, 88  # MIDI velocities of p and f


def parse_voice(text: str) -> list[tuple[str, int, int]]:
    """Voice text -> [(pitch name, onset in eighths, length in eighths)]; every bar must fill 12/8."""
    notes, t = [], 0
    for number, line in enumerate(text.strip().splitlines(), start=1):
        start = t
        for token in line.split():
            name, _, length = token.partition(":")
            length = int(length or 1)
            if name != "r":
                notes.append((name, t, length))
            t += length
        assert t - start == BAR, f"bar {number} holds {t - start} eighths, not {BAR}: {line!r}"
    return notes


def dynamic_level(onset: int) -> float:
    """Velocity of the dynamic marking in force at ``onset`` (eighths): p, crescendo across bar 7, f at bar 8."""
    bar7, bar8 = 6 * BAR, 7 * BAR
    if onset < bar7:
        return P
    if onset >= bar8:
        return F
    return P + (F - P) * (onset - bar7) / BAR


def build_score():
    """The reduction as a music21 Score: two parts (right and left hand) with key, meter, tempo and dynamics;
    every note carries its velocity."""
    from music21 import dynamics, key, meter, note, stream, tempo

    # A note struck again while a more important voice holds the same key would cut that voice short on a
    # piano, so it is left out (voices are listed most important first).
    sounding: dict[str, list[tuple[int, int]]] = {}
    parts = {"rh": stream.Part(id="right hand"), "lh": stream.Part(id="left hand")}
    for name, text, hand, offset in VOICES:
        for pitch, onset, length in parse_voice(text):
            if any(s <= onset < e for s, e in sounding.get(pitch, [])):
                continue
            sounding.setdefault(pitch, []).append((onset, onset + length))
            n = note.Note(pitch, quarterLength=length / 2)
            n.volume.velocity = round(dynamic_level(onset) + offset)
            n.volume.velocityIsRelative = False  # the velocity above already includes the dynamics
            n.editorial.comments.append(name)
            parts[hand].insert(onset / 2, n)

    score = stream.Score(id="lacrimosa")
    for hand, part in parts.items():
        part.partName = "Piano " + ("right hand" if hand == "rh" else "left hand")
        part.insert(0, meter.TimeSignature("12/8"))
        part.insert(0, key.Key("d"))
        part.insert(0, dynamics.Dynamic("p"))
        cresc = [n for n in part.notes if 6 * BAR <= n.offset * 2 < 7 * BAR]
        part.insert(0, dynamics.Crescendo(cresc[0], cresc[-1]))
        part.insert(7 * BAR / 2, dynamics.Dynamic("f"))
        score.insert(0, part)
    # Larghetto, dotted quarter = 40
    score.parts[0].insert(0, tempo.MetronomeMark("Larghetto", QPM / 1.5, referent=note.Note(type="quarter", dots=1)))
    score.metadata = None
    return score


def write(out_dir: str | Path) -> Path:
    """Writes lacrimosa.mid into ``out_dir`` and returns its path (same bytes on every run)."""
    from music21 import midi

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "lacrimosa.mid"
    mf = midi.translate.music21ObjectToMidiFile(build_score())
    path.write_bytes(mf.writestr())
    return path


if __name__ == "__main__":
    out = write(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "prompts")
    print(f"wrote {out}")
