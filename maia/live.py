"""The live view of a piece while it is composed: what the browser's piano roll (maia/web/roll.js) draws
and plays, as one JSON message per streamed update.

    view = LiveView(request, variations, mine=(prompt.steps, FOREVER), audio=True)
    message = view.update(piece, now_step)        # the notes so far, and the audio since the last update
    message = view.finish(piece, sheet=...)       # the rest of the audio, the engraved pages
    view.wav(0, piece)                            # variation 1's finished WAV: these samples at the WAV's level

Notes go to the browser whole at every update (pitch, start and end in seconds, velocity, and who wrote
them: 0 the user, 1 maia: the notes after the prompt, or those of a regenerated span), so that a missed update costs nothing. The audio is appended: one
FluidSynth synthesiser per variation stays open for the whole request and renders only the time that
became certain since the last update, so that what plays never restarts. Everything before the sampling
position is certain: the tokens are in time order, so no later token can start or end a note before it. The
stream runs at the finished WAV's rate (44.1 kHz) and keeps its samples before the live gain, so the downloaded WAV
is what was heard at the finished level (maia.synth.normalise): bit for bit maia.synth.render's, the CLI's, without
rendering the music a second time (about 2 s of CPU per minute of music per variation), unless the finished piece
is not the music heard (a piece given an ending after the sampling), which maia.outputs renders again.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from maia.encoding import Piece
from maia.synth import TAIL_SECONDS, normalise  # the WAV's tail: the stream's samples are the finished WAV's

# Hz: the finished WAV's (maia.synth.DEFAULT_SAMPLE_RATE), 88 kB per second of music (mono 16-bit)
LIVE_SAMPLE_RATE = 44100
LIVE_GAIN = 3.0  # FluidSynth's raw piano peaks at 0.1-0.27 on the piano corpus: a fixed gain, no renormalising
KNEE, CEILING = 0.7, 0.98  # the live stream's soft ceiling (soft_ceiling): linear below -3 dBFS, never full scale
USER, MAIA = 0, 1  # who wrote a note
FOREVER = 1 << 62  # a grid step after any piece's end: (start, FOREVER) is "from start to the end"


def note_events(piece: Piece, mine: tuple[int, int] = (0, FOREVER),
                turns: list[tuple[int, int]] | None = None) -> list[list]:
    """[pitch, start s, end s, velocity, who] per note; who is MAIA for notes that start in maia's grid
    steps ``mine`` = [from, to) (after the prompt; or the regenerated span), else USER. A duet has maia's
    ``turns`` instead: its answers' spans [from, to), between your phrases."""
    n = piece.notes
    if not len(n):
        return []
    sps = piece.seconds_per_step
    who = np.full(len(n), USER)
    for a, b in turns if turns is not None else [mine]:
        who[(n[:, 0] >= a) & (n[:, 0] < b)] = MAIA
    start = np.round(n[:, 0] * sps, 3)
    end = np.round((n[:, 0] + n[:, 1]) * sps, 3)
    return [[int(p), float(s), float(e), int(v), int(w)]
            for p, s, e, v, w in zip(n[:, 2], start, end, n[:, 3], who, strict=True)]


def soft_ceiling(audio: np.ndarray) -> np.ndarray:
    """Leaves samples within +-KNEE as they are and bends the rest smoothly (tanh, same slope at the knee) towards
    +-CEILING, which they never reach: the live stream's fixed gain cannot clip on dense fortissimo chords, and
    ordinary music (peaks under -3 dBFS at LIVE_GAIN) passes unchanged."""
    x = np.asarray(audio, np.float32)
    over = np.abs(x) > KNEE
    if over.any():
        x = x.copy()
        a = np.abs(x[over])
        x[over] = np.sign(x[over]) * (KNEE + (CEILING - KNEE) * np.tanh((a - KNEE) / (CEILING - KNEE)))
    return x


class LiveAudio:
    """FluidSynth audio of a growing piece, rendered in order and appended: ``advance(piece, step)``
    returns the samples from the end of the last call up to grid step ``step``, playing every note-on
    and note-off before it exactly once. ``finish`` renders the rest and a release tail. Raises
    SynthUnavailable like maia.synth.Synth.

    The level is a fixed ``gain`` under a soft ceiling, since the loudest note to come is unknown while the music
    is sampled: 5-9 dB RMS below the finished WAV (maia.synth.normalise) for the shipped prompts, about 27 dB
    below for very sparse soft music and 6 dB above (under the ceiling) for fortissimo ten-note chords
    (``python -m bench.audio_levels``, docs/playground.md). The samples before the gain are kept (float32, 176 kB per
    second of music) for ``wav``: the finished WAV, when the piece is the music played."""

    def __init__(self, sample_rate: int = LIVE_SAMPLE_RATE, gain: float = LIVE_GAIN, soundfont=None):
        from maia.synth import Synth

        self.synth = Synth(sample_rate, soundfont)
        self.rate, self.gain = sample_rate, gain
        self.pos = 0  # samples rendered so far
        self.started: set[tuple[int, int]] = set()  # (onset step, pitch) of the notes played
        self.ended: dict[tuple[int, int], tuple[int, int]] = {}  # ... of those released: (length, velocity)
        self.chunks: list[np.ndarray] = []  # int16, at the live gain
        self.raw: list[np.ndarray] = []  # float32, FluidSynth's own level: maia.synth.render's samples

    def advance(self, piece: Piece, step: int, tail: float = 0.0) -> np.ndarray:
        """The int16 samples from the last position to grid step ``step`` (plus ``tail`` seconds)."""
        stop = round(step * piece.seconds_per_step * self.rate) + round(tail * self.rate)
        if stop <= self.pos:
            return np.zeros(0, np.int16)
        per_step = piece.seconds_per_step * self.rate
        todo = []  # (sample, is_on, pitch, velocity): offs before ons at one sample, as maia.synth.events
        for onset, length, pitch, velocity in piece.notes.tolist():
            key, end = (onset, pitch), onset + length
            if key not in self.started and onset < step:
                self.started.add(key)
                todo.append((round(onset * per_step), 1, pitch, velocity))
            if key in self.started and key not in self.ended and end < step:
                self.ended[key] = (length, velocity)
                todo.append((round(end * per_step), 0, pitch, 0))
        todo.sort(key=lambda e: (e[0], e[1], e[2]))
        events = tuple(np.array([e[i] for e in todo], np.int64) for i in range(4))
        audio = self.synth.play(events, self.pos, stop)
        self.raw.append(audio)
        self.pos = stop
        pcm = np.rint(soft_ceiling(audio * self.gain) * 32767.0).astype(np.int16)
        self.chunks.append(pcm)
        return pcm

    def finish(self, piece: Piece) -> np.ndarray:
        """The rest of the piece (every note released) and TAIL_SECONDS of release."""
        return self.advance(piece, max(piece.end_step, 0) + 1, tail=TAIL_SECONDS)

    def audio(self) -> np.ndarray:
        """Everything rendered, int16 mono."""
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)

    def wav(self, piece: Piece) -> np.ndarray | None:
        """``piece``'s finished audio, maia.synth.render's at this rate: the samples played, cut to the piece and its
        release tail and peak-normalised. None when ``piece`` is not, note for note, the music played and released
        (then render it)."""
        notes = piece.notes.tolist()
        if len(notes) != len(self.ended) or any(self.ended.get((o, p)) != (n, v) for o, n, p, v in notes):
            return None
        total = round((piece.duration_seconds + TAIL_SECONDS) * self.rate)
        if total > self.pos:
            return None
        return normalise(np.concatenate(self.raw)[:total]) if total else np.zeros(0, np.float32)

    def close(self) -> None:
        self.synth.close()


class LiveView:
    """The messages of one request, one per variation per update. Audio renders on one worker thread
    beside the sampling (FluidSynth releases the GIL), so an update carries the audio that finished
    rendering since the previous one; ``finish`` waits for all of it.

    ``audio=False`` (no FluidSynth) sends the notes only; ``soundfont`` is the operator's (maia.limits), None for
    maia.synth's lookup."""

    def __init__(self, request: str, variations: int, mine: tuple[int, int] = (0, FOREVER), *, audio: bool = True,
                 sample_rate: int = LIVE_SAMPLE_RATE, soundfont=None, turns: list[tuple[int, int]] | None = None):
        self.request, self.mine, self.rate = request, mine, sample_rate
        self.turns = turns  # a duet's: maia's answers, [from, to) grid steps (note_events)
        self.players = [LiveAudio(sample_rate, soundfont=soundfont) for _ in range(variations)] if audio else []
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="maia-audio") if audio else None
        self.pending: Future | None = None
        self.sent = [0] * variations  # chunks sent, per variation
        self.seq = 0

    def _render(self, pieces: list[Piece], steps: list[int]) -> None:
        for player, piece, step in zip(self.players, pieces, steps, strict=True):
            player.advance(piece, step)

    def update(self, pieces: list[Piece], steps: list[int], heard: list[int] | None = None) -> list[str]:
        """Messages for the music so far (``steps``: each variation's sampling position, in grid steps);
        the audio is rendered up to ``heard`` when given (music after it may still change)."""
        if self.pool is not None and (self.pending is None or self.pending.done()):
            if self.pending is not None:
                self.pending.result()  # re-raise a rendering error here
            self.pending = self.pool.submit(self._render, pieces, steps if heard is None else heard)
        return self._messages(pieces, steps, done=False)

    def finish(self, pieces: list[Piece], sheets: list[dict | None] | None = None) -> list[str]:
        """The messages of the finished music: all the audio (with the release tail), and the sheet
        music if given."""
        if self.pool is not None:
            if self.pending is not None:
                self.pending.result()
            for player, piece in zip(self.players, pieces, strict=True):
                player.finish(piece)
        steps = [p.end_step for p in pieces]
        return self._messages(pieces, steps, done=True, sheets=sheets)

    def notated(self, messages: list[str], sheets: list[dict | None]) -> list[str]:
        """The finished messages again, with the engraved sheet music and no audio (already sent)."""
        out = []
        for message, sheet in zip(messages, sheets, strict=True):
            m = json.loads(message)
            m.update(seq=self.seq, audio=None, final=True)
            if sheet:
                m["sheet"] = sheet
            out.append(json.dumps(m, separators=(",", ":")))
        self.seq += 1
        return out

    def audio(self, i: int) -> np.ndarray | None:
        """Variation ``i``'s audio as heard (int16 mono at ``self.rate``), or None without audio."""
        return self.players[i].audio() if self.players else None

    def wav(self, i: int, piece: Piece) -> np.ndarray | None:
        """Variation ``i``'s finished WAV samples (LiveAudio.wav) after ``finish``; None without audio, or when
        ``piece`` is not the music played."""
        return self.players[i].wav(piece) if self.players else None

    def _messages(self, pieces, steps, done: bool, sheets=None) -> list[str]:
        out = []
        for i, (piece, step) in enumerate(zip(pieces, steps, strict=True)):
            message = {
                "v": 1, "request": self.request, "seq": self.seq, "done": done, "final": False,
                "now": round(step * piece.seconds_per_step, 3),
                "mine": [round(self.mine[0] * piece.seconds_per_step, 3),
                         round(min(self.mine[1], max(piece.end_step, step)) * piece.seconds_per_step, 3)],
                "beat": piece.seconds_per_step * piece.steps_per_quarter,
                "meter": list(piece.time_signature or (4, 4)),
                "notes": note_events(piece, self.mine, self.turns),
                "rate": self.rate, "audio": None,
            }
            if self.players:
                chunks = self.players[i].chunks
                k = len(chunks)  # the worker may append meanwhile: send what is there now
                if k > self.sent[i]:
                    at = sum(len(c) for c in chunks[: self.sent[i]])
                    pcm = np.concatenate(chunks[self.sent[i]:k]).astype("<i2")
                    message["audio"] = {"at": at, "pcm": base64.b64encode(pcm.tobytes()).decode("ascii")}
                    self.sent[i] = k
            if self.turns is not None:  # kept in the page's history with the piece (maia.history.remember)
                sps = piece.seconds_per_step
                message["turns"] = [[round(a * sps, 3), round(b * sps, 3)] for a, b in self.turns]
            if sheets and sheets[i]:
                message["sheet"] = sheets[i]
            out.append(json.dumps(message, separators=(",", ":")))
        self.seq += 1
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        for player in self.players:
            player.close()
