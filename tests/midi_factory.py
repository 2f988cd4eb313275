"""Performance-style MIDI files built deterministically with mido, for the encoding tests.

A ``Performance`` is the ground truth a test reasons about (key-down/key-up ticks, sustain-pedal spans,
tempo map, time signature, a drum part); ``to_midi_bytes`` writes it as a Standard MIDI File the way a
sequencer or a recorded performance would: tempo changes, CC64 pedal, humanised ticks, note-offs written
either as note_off or as note_on with velocity 0, format 0 (one track, several channels) or format 1
(a conductor track, one track per part, a drum track on channel 10).

Conventions that keep the expected result unambiguous (so a test can demand exact agreement):
- note events fall on even ticks and pedal events on odd ticks, so a key is never released on the very
  tick the pedal moves;
- one (track, channel, key) is never pressed while already down (MIDI cannot say which press a release
  ends), and two strikes of one key anywhere are at least ``min_gap_steps`` grid steps apart;
- the pedal of a part lives in that part's track and channel (as in recorded piano performances).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

DRUM_CHANNEL = 9  # General MIDI channel 10
DRUM_PITCHES = (35, 36, 38, 42)  # kick, kick, snare, closed hi-hat: below every piano pitch used here
PIANO_PITCHES = (43, 100)  # inclusive range of the generated piano notes


@dataclass(frozen=True)
class KeyPress:
    start: int  # tick of the key going down
    end: int  # tick of the key coming up (before any pedal)
    pitch: int
    velocity: int
    track: int  # index among the part tracks (format 1 writes them after a conductor track)
    channel: int


@dataclass
class Performance:
    tpq: int  # ticks per quarter note
    fmt: int  # MIDI file format, 0 or 1
    notes: list[KeyPress]
    pedals: list[tuple[int, int, int, int]] = field(default_factory=list)  # (track, channel, down, up)
    drums: list[KeyPress] = field(default_factory=list)  # channel 10, must be ignored by a reader
    tempos: list[tuple[int, float]] = field(default_factory=lambda: [(0, 120.0)])  # (tick, qpm)
    time_signature: tuple[int, int] = (4, 4)
    n_tracks: int = 1
    velocity0_offs: frozenset = frozenset()  # indices into notes whose release is note_on velocity 0

    def to_midi_bytes(self) -> bytes:
        meta = [
            (
                0,
                0,
                mido.MetaMessage(
                    "time_signature", numerator=self.time_signature[0], denominator=self.time_signature[1]
                ),
            )
        ]
        meta += [(t, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(q))) for t, q in self.tempos]
        parts: list[list] = [[] for _ in range(self.n_tracks)]
        for k, n in enumerate(self.notes):  # (tick, order, message): at one tick offs, then pedal, then ons
            parts[n.track].append(
                (n.start, 3, mido.Message("note_on", channel=n.channel, note=n.pitch, velocity=n.velocity))
            )
            off = (
                mido.Message("note_on", channel=n.channel, note=n.pitch, velocity=0)
                if k in self.velocity0_offs
                else mido.Message("note_off", channel=n.channel, note=n.pitch, velocity=64)
            )
            parts[n.track].append((n.end, 1, off))
        for track, ch, down, up in self.pedals:
            parts[track].append((down, 2, mido.Message("control_change", channel=ch, control=64, value=100)))
            parts[track].append((up, 2, mido.Message("control_change", channel=ch, control=64, value=0)))
        drums = []
        for n in self.drums:
            drums.append((n.start, 3, mido.Message("note_on", channel=DRUM_CHANNEL, note=n.pitch, velocity=n.velocity)))
            drums.append((n.end, 1, mido.Message("note_off", channel=DRUM_CHANNEL, note=n.pitch)))
        tracks = [meta + drums + [e for p in parts for e in p]] if self.fmt == 0 else [meta, *parts, drums]
        mf = mido.MidiFile(type=self.fmt, ticks_per_beat=self.tpq)
        for events in tracks:
            if not events:
                continue
            track = mido.MidiTrack()
            now = 0
            for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
                track.append(msg.copy(time=tick - now))
                now = tick
            mf.tracks.append(track)
        buf = io.BytesIO()
        mf.save(file=buf)
        return buf.getvalue()

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_midi_bytes())
        return path


def performance(
    seed: int,
    tpq: int = 480,
    fmt: int = 1,
    n_tracks: int = 2,
    n_chords: int = 150,
    pedal: bool = True,
    humanise: bool = True,
    n_tempos: int = 4,
    drums: bool = True,
    min_gap_steps: int = 2,
    steps_per_quarter: int = 12,
) -> Performance:
    """A random but reproducible performance: chords of 1-3 notes per part on a nominal 16th/triplet
    grid, nudged by up to a third of a grid step when ``humanise``, with a sustain pedal per part."""
    rng = np.random.default_rng(seed)
    step = tpq / steps_per_quarter  # ticks per grid step (not an integer for e.g. 1000 tpq)
    jitter = max(int(step / 3), 1) if humanise else 0
    notes: list[KeyPress] = []
    strikes: dict[int, list[int]] = {}  # pitch -> ticks of its strikes, any part
    key_up: dict[tuple[int, int, int], int] = {}  # (track, channel, pitch) -> tick the key comes up
    pedals = []
    end_tick = 0
    for track in range(n_tracks):
        channel = track  # parts on channels 1..n; format 0 tells them apart by channel alone
        q = 0.0
        for _ in range(n_chords):
            q += float(rng.choice([0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0, 1.5]))
            for pitch in rng.choice(
                np.arange(PIANO_PITCHES[0], PIANO_PITCHES[1] + 1), rng.integers(1, 4), replace=False
            ):
                pitch = int(pitch)
                start = 2 * (round(q * tpq + rng.integers(-jitter, jitter + 1)) // 2)
                length = float(rng.choice([0.05, 0.25, 0.5, 1.0, 2.0, 3.0]))
                end = 2 * (round(start + length * tpq + rng.integers(-jitter, jitter + 1)) // 2)
                end = max(end, start + 2)
                if any(abs(start - s) < min_gap_steps * step for s in strikes.get(pitch, ())):
                    continue
                if start <= key_up.get((track, channel, pitch), -1):
                    continue
                notes.append(KeyPress(start, end, pitch, int(rng.integers(20, 121)), track, channel))
                strikes.setdefault(pitch, []).append(start)
                key_up[(track, channel, pitch)] = end
                end_tick = max(end_tick, end)
        if pedal:  # alternating down/up spans over the part, on odd ticks
            t = int(rng.integers(0, tpq))
            while t < end_tick:
                down = t | 1
                up = (down + int(rng.uniform(0.5, 4.0) * tpq)) | 1
                pedals.append((track, channel, down, up))
                t = up + int(rng.uniform(0.1, 1.5) * tpq) + 2
    drum_notes = []
    if drums:
        for b in range(int(end_tick // tpq)):
            drum_notes.append(
                KeyPress(b * tpq, b * tpq + tpq // 4, int(rng.choice(DRUM_PITCHES)), 100, 0, DRUM_CHANNEL)
            )
    tempos = [(0, float(rng.uniform(50, 160)))]
    for k in range(1, n_tempos):  # a tempo map: changes spread over the piece, not on the grid
        tempos.append((int(end_tick * k / n_tempos) + 7, float(rng.uniform(40, 200))))
    off0 = frozenset(int(i) for i in np.flatnonzero(rng.random(len(notes)) < 0.5))
    ts = [(3, 4), (4, 4), (6, 8), (5, 4)][seed % 4]
    return Performance(tpq, fmt, notes, pedals, drum_notes, tempos, ts, n_tracks, off0)
