"""Awkward and broken MIDI files, built deterministically (mido and raw bytes), for the robustness tests.

Usage: .venv/bin/python tests/bad_midi.py OUTDIR     # writes every case into OUTDIR, one line per file

Each ``Case`` is either unusable, and then ``error`` is a regular expression that the one-line message
must match, or music that maia must read sensibly (``error`` is None; tests/test_robustness.py says what
"sensibly" means for each). Files come out byte-identical on every run.

Raw bytes are used where mido refuses to write the file (a bad header, running status, data bytes above
127, lying chunk lengths); mido elsewhere.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import mido

DEFAULT_LIMIT = 2 * 1024 * 1024  # maia.encoding.DEFAULT_MAX_BYTES: too_large.mid is just over it
MANY_TRACKS = 3000
MANY_NOTES = 200_000  # ~1.2 MB with running status: under the size limit, so only a note cap stops it


@dataclass(frozen=True)
class Case:
    name: str  # file name, extension included
    data: bytes
    error: str | None  # regex the one-line message must match, or None: it is music and must read
    about: str
    app_error: str | None = "same"  # what the app says, where it differs (it accepts .mid/.midi only)

    @property
    def app(self) -> str | None:
        return self.error if self.app_error == "same" else self.app_error


# ---- raw bytes ------------------------------------------------------------------------------------
def vlq(n: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    return kind + (len(body) if length is None else length).to_bytes(4, "big") + body


def header(fmt: int = 0, ntrk: int = 1, division: int = 480) -> bytes:
    return chunk(b"MThd", fmt.to_bytes(2, "big") + ntrk.to_bytes(2, "big") + division.to_bytes(2, "big"))


END_OF_TRACK = b"\x00\xff\x2f\x00"


def track(events: bytes) -> bytes:
    """An MTrk chunk of already-encoded (delta, event) bytes, closed by end-of-track."""
    return chunk(b"MTrk", events + END_OF_TRACK)


def tempo(us_per_quarter: int) -> bytes:
    return b"\x00\xff\x51\x03" + us_per_quarter.to_bytes(3, "big")


def note(pitch: int, velocity: int = 80, length: int = 240, gap: int = 0, channel: int = 0) -> bytes:
    """Delta ``gap``, note-on; delta ``length``, note-off (full status bytes)."""
    return (vlq(gap) + bytes([0x90 | channel, pitch, velocity])
            + vlq(length) + bytes([0x80 | channel, pitch, 64]))


def scale(n: int = 8, start: int = 60) -> bytes:
    """``n`` quarter notes rising from ``start``: a plain melody to surround the oddities with."""
    return b"".join(note(start + i % 12, 80, 480) for i in range(n))


def simple(events: bytes, division: int = 480) -> bytes:
    """A format 0 file of one track."""
    return header(0, 1, division) + track(events)


# ---- mido ---------------------------------------------------------------------------------------
def with_mido(tracks: list[list], fmt: int = 1, tpq: int = 480) -> bytes:
    mf = mido.MidiFile(type=fmt, ticks_per_beat=tpq)
    for msgs in tracks:
        mf.tracks.append(mido.MidiTrack(msgs))
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def on(pitch, velocity=80, time=0, channel=0):
    return mido.Message("note_on", note=pitch, velocity=velocity, time=time, channel=channel)


def off(pitch, time=0, channel=0):
    return mido.Message("note_off", note=pitch, velocity=64, time=time, channel=channel)


PNG = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes(13)) + chunk(b"IDAT", bytes(range(64))) + chunk(b"IEND", b"")
VALID = simple(tempo(500_000) + scale(16))


# ---- the cases ----------------------------------------------------------------------------------
def _many_notes(n: int) -> bytes:
    """``n`` sixteenth notes in one track, written with running status (3 bytes per event)."""
    body = bytearray()
    for i in range(n):
        p = 36 + i % 60
        body += bytes([0, 0x90, p, 80]) if i == 0 else bytes([0, p, 80])  # one status byte for all
        body += bytes([120, p, 0])  # note-on velocity 0 = note-off
    return simple(bytes(body))


def _many_tracks(n: int) -> bytes:
    conductor = [mido.MetaMessage("set_tempo", tempo=500_000)]
    parts = [[on(40 + i % 60, time=i * 10), off(40 + i % 60, time=120)] for i in range(n)]
    return with_mido([conductor, *parts])


def _too_large(limit: int) -> bytes:
    """Valid MIDI, just over the limit: a long text event, then a melody."""
    text = b"maia " * (limit // 5 + 1)
    return simple(b"\x00\xff\x01" + vlq(len(text)) + text + scale(8))


def _running_status() -> bytes:
    # C E G as a chord, then D F A: one 0x90 status for all twelve events, note-offs as velocity 0
    body = b"\x00\x90\x3c\x50" + b"\x00\x40\x50" + b"\x00\x43\x50"
    body += b"\x83\x60\x3c\x00" + b"\x00\x40\x00" + b"\x00\x43\x00"  # delta 480 (vlq 83 60)
    body += b"\x00\x3e\x64" + b"\x00\x41\x64" + b"\x00\x45\x64"
    body += b"\x83\x60\x3e\x00" + b"\x00\x41\x00" + b"\x00\x45\x00"
    return simple(body)


def _garbage_track() -> bytes:
    """A well-formed header and chunk around bytes from a fixed linear congruential generator."""
    x, body = 12345, bytearray()
    for _ in range(400):
        x = (1103515245 * x + 12345) % 2**31
        body.append(x >> 23)
    return header(0, 1, 480) + chunk(b"MTrk", bytes(body))


def cases(limit: int = DEFAULT_LIMIT) -> list[Case]:
    """Every case, in a fixed order."""
    notes_then_drums = [[on(38, 100, channel=9), off(38, 240, channel=9)] * 8]
    return [
        # -- not MIDI at all
        Case("empty.mid", b"", "empty", "zero bytes"),
        Case("text.mid", b"C D E F | G A B c |\nThis is a text file.\n", "not a MIDI file", "a text file renamed .mid"),
        Case("image.mid", PNG, "not a MIDI file", "a PNG image renamed .mid"),
        Case("image.png", PNG, "unsupported file type", "an image, with its own extension", "upload a MIDI file"),
        Case("notes.txt", VALID, None, "valid MIDI named .txt: the CLI goes by the MThd header", "upload a MIDI file"),
        Case("too_large.mid", _too_large(limit), "over the limit of", "valid MIDI just over the size limit"),
        # -- MIDI, broken
        Case("header_only.mid", header(0, 1), "no notes", "MThd, no track chunk"),
        Case("header_cut.mid", VALID[:10], "truncated", "cut inside MThd"),
        Case("truncated.mid", VALID[: len(VALID) * 2 // 3], "corrupt or truncated", "cut inside a track"),
        Case("chunk_too_long.mid", header(0, 1) + chunk(b"MTrk", scale(4), length=0x7FFFFFFF),
             "corrupt or truncated", "MTrk claims 2 GB"),
        Case("garbage_track.mid", _garbage_track(), "corrupt", "random bytes in a track chunk"),
        Case("missing_tracks.mid", header(1, 5) + track(scale(4)), None, "header announces 5 tracks, 1 present"),
        Case("format2.mid", header(2, 1) + track(scale(4)), "format 2", "independent sequences"),
        Case("smpte.mid", header(0, 1, 0xE728) + track(scale(4)), "SMPTE", "25 fps x 40 ticks time division"),
        Case("huge_delta.mid", simple(note(60, gap=0x0FFFFFFF)), "over the limit of",
             "one note 559k quarter notes in: its waits alone would be 140k tokens"),
        Case("time_overflow.mid", simple(b"".join(note(60 + i, gap=0x0FFFFFFF) for i in range(9))),
             "note times overflow", "delta times summing past 2**31 ticks"),
        # -- MIDI without music
        Case("no_notes.mid", with_mido([[mido.MetaMessage("set_tempo", tempo=400_000),
                                          mido.MetaMessage("time_signature", numerator=3, denominator=4)]]),
             "no notes", "tempo and meter only"),
        Case("drums_only.mid", with_mido(notes_then_drums), "no notes", "channel 10 only"),
        # -- odd but music
        Case("tempo_1us.mid", simple(tempo(1) + scale(8)), None, "1 µs per quarter note"),
        Case("tempo_16s.mid", simple(tempo(0xFFFFFF) + scale(8)), None, "16.7 s per quarter note"),
        Case("many_tracks.mid", _many_tracks(MANY_TRACKS), None, f"{MANY_TRACKS} tracks of one note each"),
        Case("many_notes.mid", _many_notes(MANY_NOTES), None, f"{MANY_NOTES} notes in one track"),
        Case("zero_length.mid", simple(b"".join(note(60 + i, 80, 0, 240) for i in range(8))), None,
             "every note-off on its note-on's tick"),
        Case("pitch_extremes.mid", simple(b"".join(note(p, 80, 120) for p in (0, 5, 20, 21, 108, 109, 120, 127))),
             None, "MIDI pitches 0..127, outside the piano's 21..108"),
        Case("velocity_extremes.mid", simple(note(60, 1) + note(62, 127) + note(64, 0) + note(65, 64)), None,
             "velocities 1 and 127; a velocity-0 note-on (a note-off)"),
        Case("data_bytes_over_127.mid", simple(scale(4) + b"\x00\x90\xc8\xff" + scale(4, 67)), None,
             "a note-on whose data bytes are 200 and 255 (status bytes): the event is skipped"),
        Case("orphan_note_offs.mid", simple(b"".join(vlq(0) + bytes([0x80, p, 64]) for p in (50, 52, 54))
                                            + scale(3) + b"\x00\x80\x30\x40"), None,
             "note-offs of keys never pressed, around three notes"),
        Case("unterminated.mid", simple(b"\x00\x90\x3c\x50" + scale(2, 64)), None,
             "a note-on never released: dropped (symusic), the released notes read"),
        Case("running_status.mid", _running_status(), None, "running status, note-offs as velocity 0"),
    ]


def write_all(outdir: str | Path, limit: int = DEFAULT_LIMIT) -> list[Path]:
    """Writes every case into ``outdir`` (created if needed); returns the paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases(limit):
        (path := outdir / case.name).write_bytes(case.data)
        paths.append(path)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[2])
    for case, path in zip(cases(), write_all(sys.argv[1]), strict=True):
        print(f"{path}  {len(case.data):>9} bytes  {'error: ' + case.error if case.error else 'music'}  ({case.about})")
