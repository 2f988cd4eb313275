"""One door for a finished piece's files: MIDI, WAV, piano roll, MusicXML and the analysis line.

    files = write(piece, midi="out.mid", wav="out.wav", roll="out.png", musicxml="out.musicxml",
                  title="maia — chopin", subtitle="model piano, seed 3, variation 1", prompt_steps=96)
    files.midi, files.audio, files.roll, files.musicxml, files.xml, files.analysis

The playground (maia/playground.py) and ``python -m maia generate`` both finish a piece here, so a file
downloaded from the page and one written by the CLI are made by the same code. Each file is optional. The
WAV of the page, the gallery and the CLI is maia.synth.render's: 44.1 kHz, peak-normalised to 0.9
(maia.synth.normalise), so the same piece gives the same WAV from each. Samples already rendered can be passed as
``audio``: the page passes its live stream's (maia.live.LiveAudio.wav, the same samples without a second rendering).
Sheet music is best effort: music21 and Verovio fail on some odd music, and then ``musicxml`` is None
while the MIDI stays complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maia.encoding import Piece


@dataclass
class Files:
    """What ``write`` wrote (None: not asked for, or not possible) and the analysis line."""

    midi: Path | None = None
    audio: Path | None = None
    roll: Path | None = None
    musicxml: Path | None = None
    xml: str | None = None  # the MusicXML text, for engraving (maia.notation.sheet)
    analysis: str = ""


def key_label(key: tuple) -> str:
    """(tonic, mode[, strength]) -> "F♯ minor", "B♭ major": the spelling of the analysis and the status line."""
    from maia.metrics import key_name

    return key_name((key[0], key[1], 0.0)).replace("b ", "♭ ").replace("#", "♯")


def analysis(piece: Piece, key: tuple[int, str] | None = None, ending: tuple[int, str] | None = None) -> str:
    """The line shown under a piece: ``Key: D minor · 212 notes · 31.4 s``; with ``key`` (a key lock), that key:
    ``Key: F♯ major (locked) · ...``; with ``ending`` (the home key a set-length piece was made to end in), that
    key, so that the line agrees with the status's "ends in F♯ minor" where the estimate over the whole piece
    may name its relative major: ``Key: F♯ minor (it ends there) · ...``."""
    from maia.metrics import estimate_key

    if key is not None:
        return f"Key: {key_label(key)} (locked) · {len(piece)} notes · {piece.duration_seconds:.1f} s"
    if ending is not None:
        return f"Key: {key_label(ending)} (it ends there) · {len(piece)} notes · {piece.duration_seconds:.1f} s"
    name = key_label(estimate_key(piece)) if len(piece) else "?"
    return f"Key: {name} · {len(piece)} notes · {piece.duration_seconds:.1f} s"


def write_audio(samples: np.ndarray, path: str | Path, sample_rate: int) -> Path:
    """16-bit PCM samples (int16) or floats in [-1, 1] as a WAV file, as they are (no level applied)."""
    from maia.synth import write_wav

    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32767.0
    return write_wav(samples, path, sample_rate)


def sheet_music(piece: Piece, path: str | Path, title: str = "", subtitle: str = "",
                key: tuple[int, str] | None = None) -> tuple[Path, str] | None:
    """The piece as a piano grand staff in MusicXML (maia/notation.py) at ``path`` -> (path, the XML), or None
    when music21 cannot notate it (an empty piece, odd durations)."""
    from maia.notation import musicxml

    if not len(piece):
        return None
    try:
        xml = musicxml(piece, title=title, subtitle=subtitle, key=key)
    except Exception:  # music21 raises many unrelated types on odd music; the MIDI stays usable
        return None
    path = Path(path)
    path.write_text(xml, encoding="utf-8")
    return path, xml


def write(piece: Piece, *, midi: str | Path | None = None, wav: str | Path | None = None,
          roll: str | Path | None = None, musicxml: str | Path | None = None, title: str = "", subtitle: str = "",
          prompt_steps: int | None = None, audio: np.ndarray | None = None, sample_rate: int = 44100,
          soundfont: str | Path | None = None, key: tuple[int, str] | None = None,
          ending: tuple[int, str] | None = None) -> Files:
    """Writes the files asked for. The WAV is ``audio`` when given (samples at ``sample_rate``), else rendered
    with FluidSynth (``soundfont``: maia.synth's lookup when None; SynthUnavailable when it cannot load).
    The roll draws the first ``prompt_steps`` grid steps as the user's; ``key`` (a key lock) is the key named
    and notated instead of the estimated one; ``ending`` (the home key the piece was made to end in) is the
    key named when there is no lock."""
    files = Files(analysis=analysis(piece, key, ending))
    if midi is not None:
        files.midi = piece.write_midi(midi)
    if wav is not None:
        if audio is None:
            from maia.synth import render

            audio = render(piece, sample_rate, soundfont)
        files.audio = write_audio(audio, wav, sample_rate)
    if roll is not None:
        from maia.pianoroll import save_png

        files.roll = save_png(piece, roll, prompt_steps=prompt_steps)  # 0: every note maia's, as on the page
    if musicxml is not None:
        notated = sheet_music(piece, musicxml, title, subtitle, key)
        if notated is not None:
            files.musicxml, files.xml = notated
    return files
