"""MIDI / score  <->  notewise tokens.

The musical heart of maia. A piece is first read into a ``Piece``: a table of notes on a grid of
``steps_per_quarter`` steps per quarter note (12 by default, so 16ths and triplets are exact), plus the
tempo the music is heard at and the initial time signature. Time counts in quarter notes, so tempo changes never
bend the grid: a file with a tempo map gets the one tempo that plays its notes in the time the map does.

A ``Piece`` then becomes the token sequence

    <composer:NAME> <start> v5 p60 p64 wait12 endp60 endp64 ... <end>

Inside one time step the order is canonical (note-offs before note-ons, ascending pitch; a ``v`` token
right before the note-on whose dynamics level differs from the previous note-on's), so encoding is a
function. ``decode`` accepts *any* sequence of vocabulary tokens: a model emits unmatched ``endp``,
repeated ``p`` and forgets ``<end>``, and the result is still a playable piece.

MIDI is parsed with symusic (C++; pretty_midi is ~100x slower on large files); MusicXML, kern, abc and
other score formats go through music21.

One file over 300 lines on purpose: reading, the token rules and decoding are one contract (a change to one
breaks the round trip of the others), and the conventions ask that it be read first and whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maia.errors import InputError
from maia.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_QUARTERS
from maia.merges import expand_merges
from maia.vocab import EncodingConfig, Vocab

MIDI_SUFFIXES = {".mid", ".midi", ".smf", ".kar"}
SCORE_SUFFIXES = {".xml", ".musicxml", ".mxl", ".krn", ".abc", ".mei", ".rntxt", ".capx", ".md"}
DEFAULT_TEMPO = 120.0
TEMPO_RANGE = (10.0, 1000.0)  # quarter notes per minute kept on decode; absurd file tempos are clamped


def _check_length(end_steps, steps_per_quarter: int, name: str, limit: int) -> None:
    """InputError if the music (grid steps, (N,)) lasts longer than ``limit`` quarter notes. A few bytes of
    MIDI can put a note days into the piece; its waits would then be millions of tokens."""
    quarters = int(np.max(end_steps)) // steps_per_quarter
    if quarters > limit:
        raise InputError(f"{name}: the music lasts {quarters:,} quarter notes, over the limit of {limit:,}")


@dataclass
class Piece:
    """Notes on the grid. ``notes`` is an int64 array (N, 4): onset, duration (steps), pitch, velocity,
    sorted by onset then pitch; durations are >= 1 and a key never sounds twice at once."""

    notes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    steps_per_quarter: int = 12
    tempo_qpm: float = DEFAULT_TEMPO
    time_signature: tuple[int, int] | None = None
    composer: str | None = None

    def __len__(self) -> int:
        return len(self.notes)

    @property
    def end_step(self) -> int:
        return int((self.notes[:, 0] + self.notes[:, 1]).max()) if len(self.notes) else 0

    @property
    def seconds_per_step(self) -> float:
        return 60.0 / (self.tempo_qpm * self.steps_per_quarter)

    @property
    def duration_seconds(self) -> float:
        return self.end_step * self.seconds_per_step

    # ---- MIDI out --------------------------------------------------------------------------------
    def to_score(self):
        """A symusic Score: one piano track (program 0), the stored tempo and time signature."""
        from symusic import Note, Score, Tempo, TimeSignature, Track

        ticks = 40  # ticks per grid step: 480 tpq at 12 steps per quarter, any grid stays exact
        score = Score(self.steps_per_quarter * ticks)
        score.tempos.append(Tempo(0, qpm=float(np.clip(self.tempo_qpm, *TEMPO_RANGE))))
        if self.time_signature:
            score.time_signatures.append(TimeSignature(0, *self.time_signature))
        track = Track(name="Piano", program=0, is_drum=False)
        n = self.notes
        if len(n):
            track.notes = Note.from_numpy(
                time=(n[:, 0] * ticks).astype(np.int32),
                duration=(n[:, 1] * ticks).astype(np.int32),
                pitch=n[:, 2].astype(np.int8),
                velocity=n[:, 3].astype(np.int8),
            )
        score.tracks.append(track)
        return score

    def to_midi_bytes(self) -> bytes:
        return bytes(self.to_score().dumps_midi())

    def write_midi(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_midi_bytes())
        return path


# ---- note table helpers -------------------------------------------------------------------------
def fold_pitches(pitch: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Moves pitches outside [lo, hi] into it by whole octaves."""
    pitch = np.asarray(pitch, np.int64)
    below, above = pitch < lo, pitch > hi
    pitch = np.where(below, pitch + 12 * ((lo - pitch + 11) // 12), pitch)
    return np.where(above, pitch - 12 * ((pitch - hi + 11) // 12), pitch)


def normalize_notes(onset, end, pitch, velocity, cfg: EncodingConfig) -> np.ndarray:
    """Builds the canonical note table from grid onsets/ends: folds pitches into range, clips
    velocities, and cuts a note where its key is struck again (which is what a listener hears)."""
    onset = np.asarray(onset, np.int64)
    end = np.maximum(np.asarray(end, np.int64), onset + 1)
    pitch = fold_pitches(pitch, cfg.pitch_lo, cfg.pitch_hi)
    velocity = np.clip(np.asarray(velocity, np.int64), 1, 127)
    if len(onset) == 0:
        return np.zeros((0, 4), np.int64)
    # Per key in time order; of several strikes at one step keep the longest (last after this sort).
    order = np.lexsort((end, onset, pitch))
    onset, end, pitch, velocity = onset[order], end[order], pitch[order], velocity[order]
    same_key_next = np.r_[pitch[1:] == pitch[:-1], False]
    dup = same_key_next & np.r_[onset[1:] == onset[:-1], False]
    keep = ~dup
    onset, end, pitch, velocity = onset[keep], end[keep], pitch[keep], velocity[keep]
    same_key_next = np.r_[pitch[1:] == pitch[:-1], False]
    next_onset = np.r_[onset[1:], np.iinfo(np.int64).max]
    end = np.where(same_key_next, np.minimum(end, next_onset), end)
    notes = np.stack([onset, end - onset, pitch, velocity], axis=1)
    return notes[np.lexsort((notes[:, 2], notes[:, 0]))]


# ---- reading MIDI -------------------------------------------------------------------------------
def _check_midi_header(data: bytes, name: str) -> None:
    if len(data) == 0:
        raise InputError(f"{name}: the file is empty")
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":  # RIFF-wrapped MIDI: still refuse clearly
        raise InputError(f"{name}: RIFF/RMID-wrapped MIDI is not supported; export a plain .mid")
    if data[:4] != b"MThd":
        raise InputError(f"{name}: not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise InputError(f"{name}: truncated MIDI header")
    fmt = int.from_bytes(data[8:10], "big")
    division = int.from_bytes(data[12:14], "big")
    if fmt == 2:
        raise InputError(f"{name}: MIDI format 2 (independent sequences) is not supported")
    if fmt > 2:
        raise InputError(f"{name}: unknown MIDI format {fmt}")
    if division & 0x8000:
        raise InputError(f"{name}: SMPTE time division is not supported; re-export with ticks per quarter")
    if division == 0:
        raise InputError(f"{name}: invalid MIDI header (0 ticks per quarter note)")


def read_midi_bytes(data: bytes, cfg: EncodingConfig | None = None, name: str = "<midi>", *,
                    max_quarters: int = DEFAULT_MAX_QUARTERS) -> Piece:
    """Parses Standard MIDI File bytes into a Piece: all non-drum tracks merged onto one piano,
    sustain pedal applied, time quantised to the grid in quarter notes. InputError for music longer than
    ``max_quarters`` quarter notes (maia.limits, MAIA_MAX_QUARTERS)."""
    from symusic import Score

    cfg = cfg or EncodingConfig()
    _check_midi_header(data, name)
    try:
        score = Score.from_midi(data, sanitize_data=True)
    except Exception as e:  # symusic raises plain RuntimeError/ValueError on corrupt data
        raise InputError(f"{name}: corrupt or truncated MIDI ({str(e).splitlines()[0][:120]})") from None
    tpq, spq = int(score.ticks_per_quarter), cfg.steps_per_quarter
    parts = []
    for track in score.tracks:
        if track.is_drum or track.note_num() == 0:
            continue
        a = track.notes.numpy()
        onset = a["time"].astype(np.int64)
        end = onset + np.maximum(a["duration"].astype(np.int64), 0)
        if len(track.pedals):
            end = _apply_sustain(end, track.pedals.numpy())
        parts.append((onset, end, a["pitch"].astype(np.int64), a["velocity"].astype(np.int64)))
    if not parts:
        raise InputError(f"{name}: no notes to play (empty, or drums only)")
    onset, end, pitch, vel = (np.concatenate(x) for x in zip(*parts, strict=True))
    if onset.min() < 0:  # symusic keeps ticks in int32: a file of huge delta times wraps around
        raise InputError(f"{name}: corrupt MIDI (note times overflow)")

    def to_steps(t):  # ticks -> nearest grid step, exact integer arithmetic
        return (t * (2 * spq) + tpq) // (2 * tpq)

    _check_length(to_steps(end), spq, name, max_quarters)
    notes = normalize_notes(to_steps(onset), to_steps(end), pitch, vel, cfg)
    tempo = heard_tempo(score.tempos.numpy(), tpq, int(onset.max()) or int(end.max()))  # up to the last onset
    ts = None
    if len(score.time_signatures):
        t0 = score.time_signatures[0]
        if t0.numerator > 0 and t0.denominator > 0:
            ts = (int(t0.numerator), int(t0.denominator))
    return Piece(notes, spq, tempo, ts)


def heard_tempo(tempos: dict, tpq: int, end_tick: int) -> float:
    """The one tempo (quarter notes per minute) that plays ticks 0..``end_tick`` (the last onset) in the time the file's tempo
    map does: a file at 100 qpm that moves to 120 is heard between the two, not at its first tempo. Before the
    first tempo event MIDI plays at 120 qpm; an empty map gives DEFAULT_TEMPO. Clamped to TEMPO_RANGE."""
    times, mspq = np.asarray(tempos["time"], np.int64), np.asarray(tempos["mspq"], np.float64)
    keep = mspq > 0
    times, mspq = times[keep], mspq[keep]
    if not len(times) or end_tick <= 0:
        return float(np.clip(60_000_000 / mspq[0], *TEMPO_RANGE)) if len(times) else DEFAULT_TEMPO
    order = np.argsort(times, kind="stable")
    times, mspq = np.concatenate([[0], times[order]]), np.concatenate([[500_000.0], mspq[order]])
    bounds = np.clip(np.append(times[1:], end_tick), 0, end_tick)  # where each tempo stops
    starts = np.clip(times, 0, end_tick)
    microseconds = float(np.sum((bounds - starts) / tpq * mspq))
    qpm = (end_tick / tpq) / (microseconds / 60_000_000)
    return float(np.clip(qpm, *TEMPO_RANGE))


def _apply_sustain(end: np.ndarray, pedals: dict) -> np.ndarray:
    """A key released while the pedal is down keeps sounding until the pedal comes up."""
    start = pedals["time"].astype(np.int64)
    stop = start + pedals["duration"].astype(np.int64)
    order = np.argsort(start, kind="stable")
    start, stop = start[order], np.maximum.accumulate(stop[order])  # merge overlapping pedal spans
    i = np.searchsorted(start, end, side="right") - 1
    held = (i >= 0) & (end < stop[np.maximum(i, 0)])
    return np.where(held, stop[np.maximum(i, 0)], end)


# ---- reading scores (music21) -------------------------------------------------------------------
def pieces_from_music21(obj, cfg: EncodingConfig | None = None, *,
                        max_quarters: int = DEFAULT_MAX_QUARTERS) -> list[Piece]:
    """Converts a parsed music21 Score, Part or Opus into Pieces (an Opus gives one per score)."""
    from music21 import stream

    cfg = cfg or EncodingConfig()
    if isinstance(obj, stream.Opus):
        return [p for s in obj.scores for p in pieces_from_music21(s, cfg, max_quarters=max_quarters)]
    return [_piece_from_stream(obj, cfg, max_quarters)]


def _piece_from_stream(s, cfg: EncodingConfig, max_quarters: int) -> Piece:
    from music21 import dynamics, meter, note, tempo

    spq = cfg.steps_per_quarter
    parts = list(s.parts) if hasattr(s, "parts") and len(s.parts) else [s]
    onsets, ends, pitches, vels = [], [], [], []
    for part in parts:
        flat = part.flatten().stripTies()
        dyn = [(float(d.offset), d.volumeScalar) for d in flat.getElementsByClass(dynamics.Dynamic)]
        dyn_t = np.array([d[0] for d in dyn]) if dyn else None
        for n in flat.notes:
            if isinstance(n, note.Unpitched) or not hasattr(n, "pitches"):
                continue
            t = float(n.offset)
            q = float(n.quarterLength)
            if dyn_t is not None and (k := np.searchsorted(dyn_t, t, side="right") - 1) >= 0:
                v = round((dyn[k][1] or 0.55) * 127)
            else:
                v = n.volume.velocity if n.volume.velocity is not None else 70  # mf
            for p in n.pitches:
                onsets.append(round(t * spq))
                ends.append(round((t + q) * spq))
                pitches.append(p.midi)
                vels.append(v)
    if not onsets:
        raise InputError(f"{_stream_name(s)}: no notes to play")
    _check_length(ends, spq, _stream_name(s), max_quarters)
    notes = normalize_notes(onsets, ends, pitches, vels, cfg)
    qpm = DEFAULT_TEMPO
    mm = s.recurse().getElementsByClass(tempo.MetronomeMark).first()
    if mm is not None and mm.getQuarterBPM():
        qpm = float(np.clip(mm.getQuarterBPM(), *TEMPO_RANGE))
    ts = s.recurse().getElementsByClass(meter.TimeSignature).first()
    ts = (int(ts.numerator), int(ts.denominator)) if ts is not None else None
    return Piece(notes, spq, qpm, ts)


def _stream_name(s) -> str:
    md = getattr(s, "metadata", None)
    return (md.title if md is not None and md.title else None) or "score"


# ---- reading any file ---------------------------------------------------------------------------
def read(path: str | Path, cfg: EncodingConfig | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES,
         max_quarters: int = DEFAULT_MAX_QUARTERS) -> Piece:
    """Reads a MIDI file (symusic) or a score music21 understands into a Piece. A server passes its
    ``maia.limits.Limits``: files over ``max_bytes`` never reach a parser, music over ``max_quarters`` is refused.

    Raises InputError with a one-line message for a missing, empty, oversized or unreadable file. The
    message names the file, not its folder: a server's upload folder is nobody's business."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError(f"{name}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        # In bytes: rounded megabytes would print "2.1 MB, over the 2.1 MB limit" for a file 1 byte over.
        raise InputError(f"{name}: file is {size:,} bytes, over the limit of {max_bytes:,} bytes")
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix in MIDI_SUFFIXES or data[:4] == b"MThd":
        return read_midi_bytes(data, cfg, name=name, max_quarters=max_quarters)
    if suffix in SCORE_SUFFIXES:
        return read_score(path, cfg, max_quarters=max_quarters)[0]
    raise InputError(f"{name}: unsupported file type {suffix or '(none)'}; expected MIDI or a score")


def read_score(path: str | Path, cfg: EncodingConfig | None = None, *,
               max_quarters: int = DEFAULT_MAX_QUARTERS) -> list[Piece]:
    """Parses a score (MusicXML, kern, abc, ...) with music21."""
    import music21

    try:
        obj = music21.converter.parse(str(path))
    except Exception as e:  # music21 raises many unrelated types on malformed scores
        raise InputError(f"{Path(path).name}: cannot parse score ({type(e).__name__}: {str(e)[:100]})") from None
    try:
        pieces = pieces_from_music21(obj, cfg, max_quarters=max_quarters)
    except InputError as e:  # the message names the score's title; name the file the user gave
        raise InputError(f"{Path(path).name}: {str(e).split(': ', 1)[-1]}") from None
    if not pieces:
        raise InputError(f"{Path(path).name}: no notes to play")
    return pieces


# ---- tokens -------------------------------------------------------------------------------------
def velocity_bins(velocity: np.ndarray, n_bins: int) -> np.ndarray:
    """MIDI velocity 1..127 -> level 0..n_bins-1 (token v1..v<n>)."""
    return np.minimum(np.asarray(velocity) * n_bins // 128, n_bins - 1)


def bin_velocity(level: int, n_bins: int) -> int:
    """Level 0..n_bins-1 -> the MIDI velocity at the centre of its bin."""
    # Bins narrower than 2 velocities (n_bins > 64) can have their floored centre below the bin: then
    # take the bin's smallest velocity, so that velocity_bins(bin_velocity(k)) == k for every level.
    first = -(-128 * level // n_bins)
    return int(min(127, max(1, first, (2 * level + 1) * 128 // (2 * n_bins))))


def encode_ids(piece: Piece, vocab: Vocab, composer: str | None = None, *, start=True, end=True) -> np.ndarray:
    """Piece -> token ids (uint16): ``<composer:X> <start> body <end>``. Vectorised over notes."""
    cfg = vocab.config
    if piece.steps_per_quarter != cfg.steps_per_quarter:
        raise ValueError("piece and vocabulary use different grids")
    n = piece.notes
    if len(n) and (n[:, 2].min() < cfg.pitch_lo or n[:, 2].max() > cfg.pitch_hi):
        # Folding into a narrower range can land two notes on one key: rebuild the table so that a
        # key still never sounds twice at once (otherwise the tokens would not decode to the piece).
        n = normalize_notes(n[:, 0], n[:, 0] + n[:, 1], n[:, 2], n[:, 3], cfg)
    onset, dur, pitch = n[:, 0], n[:, 1], n[:, 2]
    # Events: one on and one off per note, ordered by (time, off-before-on, pitch).
    time = np.concatenate([onset + dur, onset])
    kind = np.repeat(np.array([0, 1], np.int64), len(n))
    p = np.concatenate([pitch, pitch])
    order = np.argsort(time * 512 + kind * 256 + p, kind="stable")
    time, kind, p = time[order], kind[order], p[order]
    level = np.concatenate([np.full(len(n), -1), velocity_bins(n[:, 3], cfg.n_velocity_bins)])[order]
    # A dynamics token precedes a note-on whose level differs from the previous note-on's.
    on_levels = level[kind == 1]
    changed = np.r_[True, on_levels[1:] != on_levels[:-1]]
    has_vel = np.zeros(len(time), bool)
    has_vel[kind == 1] = changed
    # Waits before each event: ceil(delta / max_wait) tokens, all full but the last.
    delta = np.diff(time, prepend=0)
    n_wait = -(-delta // cfg.max_wait)
    size = n_wait + has_vel + 1
    stop = np.cumsum(size)  # token block of event e is [stop[e] - size[e], stop[e])
    body = np.full(int(stop[-1]) if len(stop) else 0, vocab.wait_offset + cfg.max_wait, np.int64)
    last_wait = stop - size + n_wait - 1
    w = n_wait > 0
    body[last_wait[w]] = vocab.wait_offset + delta[w] - (n_wait[w] - 1) * cfg.max_wait
    body[stop[has_vel] - 2] = vocab.velocity_offset + level[has_vel]
    body[stop - 1] = np.where(kind == 1, vocab.on_offset, vocab.off_offset) + p
    head = [vocab.composer_id(composer or piece.composer)] + ([vocab.start_id] if start else [])
    return np.concatenate([head, body, [vocab.end_id] if end else []]).astype(np.uint16)


def encode(piece: Piece, vocab: Vocab | None = None, composer: str | None = None) -> list[str]:
    """Piece -> notewise token strings."""
    vocab = vocab or Vocab()
    return vocab.tokens(encode_ids(piece, vocab, composer))


def decode_ids(ids, vocab: Vocab, tempo_qpm: float = DEFAULT_TEMPO, time_signature=None) -> Piece:
    """Token ids -> Piece. Never raises on ids of the vocabulary: unmatched ``endp`` are ignored, a
    re-struck key closes its previous note, and notes left open close at the last time step (at most
    ``max_open_steps`` after their onset). Stops at the first ``<end>`` after the music started.
    The result keeps the Piece invariants (of two strikes of one key at one step the longer stays)."""
    cfg = vocab.config
    ids = expand_merges(ids, vocab)
    n_vel, max_wait, n_pitch = cfg.n_velocity_bins, cfg.max_wait, cfg.pitch_hi - cfg.pitch_lo + 1
    v0, w0, on0, off0 = vocab.velocity_offset, vocab.wait_offset, vocab.on_offset, vocab.off_offset
    lo = cfg.pitch_lo
    t, velocity = 0, bin_velocity(n_vel * 5 // 8, n_vel)
    sounding: dict[int, tuple[int, int]] = {}  # pitch -> (onset, velocity)
    out: list[tuple[int, int, int, int]] = []
    composer = None
    for i in ids:
        i = int(i)
        if i == vocab.end_id:
            if out or sounding or t:
                break
        elif v0 <= i < v0 + n_vel:
            velocity = bin_velocity(i - v0, n_vel)
        elif w0 + 1 <= i <= w0 + max_wait:
            t += i - w0
        elif on0 + lo <= i < on0 + lo + n_pitch:
            pitch = i - on0
            if pitch in sounding:  # key struck again: the old note ends here
                s, v = sounding.pop(pitch)
                out.append((s, max(t - s, 1), pitch, v))
            sounding[pitch] = (t, velocity)
        elif off0 + lo <= i < off0 + lo + n_pitch:
            pitch = i - off0
            if pitch in sounding:
                s, v = sounding.pop(pitch)
                out.append((s, max(t - s, 1), pitch, v))
        elif vocab.is_composer(i) and composer is None:
            composer = vocab.composers[i - vocab.composer_offset]
        # <pad>, <start>, stray composer tokens and out-of-range ids carry no music
    for pitch, (s, v) in sounding.items():
        out.append((s, int(np.clip(t - s, 1, cfg.max_open_steps)), pitch, v))
    n = np.array(out, np.int64).reshape(-1, 4)
    # Repeated or zero-length strikes ("p60 p60", "p60 endp60 p60") leave two notes on one key at one
    # step; normalising keeps the longer, so a key never sounds twice and re-encoding is canonical.
    notes = normalize_notes(n[:, 0], n[:, 0] + n[:, 1], n[:, 2], n[:, 3], cfg)
    return Piece(notes, cfg.steps_per_quarter, tempo_qpm, time_signature, composer)


def decode(tokens, vocab: Vocab | None = None, **meta) -> Piece:
    """Token strings -> Piece (write it with ``.write_midi(path)``). Unknown strings are skipped."""
    vocab = vocab or Vocab()
    return decode_ids([vocab.stoi[t] for t in tokens if t in vocab.stoi], vocab, **meta)


def transpose_ids(ids: np.ndarray, semitones: int, vocab: Vocab) -> np.ndarray:
    """Shifts every p/endp token by ``semitones``; pitches pushed out of range fold back by octaves."""
    if semitones == 0:
        return ids
    cfg = vocab.config
    ids = np.asarray(ids).astype(np.int64)
    n_pitch = cfg.pitch_hi - cfg.pitch_lo + 1
    out = ids.copy()
    for offset in (vocab.on_offset, vocab.off_offset):
        m = (ids >= offset + cfg.pitch_lo) & (ids < offset + cfg.pitch_lo + n_pitch)
        out[m] = offset + fold_pitches(ids[m] - offset + semitones, cfg.pitch_lo, cfg.pitch_hi)
    return out
