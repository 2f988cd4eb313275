"""FluidSynth rendering and SoundFont lookup.

``render(piece)`` turns a Piece into a mono float32 waveform with FluidSynth (through pyfluidsynth's
ctypes binding to libfluidsynth), ``write_wav`` saves it as 16-bit PCM. ``Synth`` is the open
synthesiser underneath, for audio rendered as the music grows (maia/live.py). Nothing is loaded at import
time: the library is loaded, and the SoundFont read, on each call to ``render`` (explicit arguments, as
note_seq's ``fluidsynth(sequence, sample_rate, sf2_path)``).

SoundFont lookup order (``find_soundfont``):
  1. the file the operator chose (MAIA_SOUNDFONT, read by maia.limits and passed in);
  2. any ``*.sf2`` in the repository's ``soundfonts/`` folder (first in name order);
  3. Debian's fluid-soundfont-gm: /usr/share/sounds/sf2/FluidR3_GM.sf2 (then any other .sf2 there);
  4. TimGM6mb.sf2, the small General MIDI SoundFont bundled with pretty_midi.
"""

from __future__ import annotations

import ctypes
import wave
from pathlib import Path

import numpy as np

from maia.encoding import Piece
from maia.errors import MaiaError

INSTALL_HINT = (
    "FluidSynth is not installed: run `sudo apt-get install fluidsynth libfluidsynth3` "
    "(Debian/Ubuntu; `brew install fluid-synth` on macOS), then `pip install pyfluidsynth`"
)
REPO_SOUNDFONTS = Path(__file__).resolve().parent.parent / "soundfonts"
SYSTEM_SOUNDFONTS = Path("/usr/share/sounds/sf2")
PREFERRED_SYSTEM_SOUNDFONT = "FluidR3_GM.sf2"
DEFAULT_SAMPLE_RATE = 44100
PEAK = 0.9  # rendered audio is scaled so its loudest sample is this (headroom for lossy encoders)
TAIL_SECONDS = 1.0  # release and reverb after the last note-off
SILENCE = 1e-5  # a peak below this (-100 dB) is silence; FluidSynth's idle output is about 3e-8


class SynthUnavailable(MaiaError):
    """FluidSynth or a SoundFont cannot be loaded; the message says what to install."""


def _load_fluidsynth():
    """Imports pyfluidsynth, which loads libfluidsynth with ctypes at import time."""
    try:
        import fluidsynth
    except (ImportError, OSError) as e:
        raise SynthUnavailable(f"{INSTALL_HINT} ({e})") from None
    if not hasattr(fluidsynth, "Synth"):  # the unrelated PyPI package named "fluidsynth"
        raise SynthUnavailable(f"{INSTALL_HINT} (the imported 'fluidsynth' module is not pyfluidsynth)")
    return fluidsynth


def fluidsynth_available() -> bool:
    """True when libfluidsynth and its Python binding can be loaded."""
    try:
        _load_fluidsynth()
    except SynthUnavailable:
        return False
    return True


def _bundled_soundfont() -> Path | None:
    """pretty_midi's TimGM6mb.sf2, found from its package folder without importing pretty_midi."""
    from importlib.util import find_spec

    spec = find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "TimGM6mb.sf2"
        if path.is_file():
            return path
    return None


def find_soundfont(chosen: str | Path | None = None) -> Path | None:
    """The SoundFont to render with: ``chosen`` (the operator's MAIA_SOUNDFONT) when given, else the first found
    in the order of the module docstring, or None. SynthUnavailable when ``chosen`` is not a file."""
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise SynthUnavailable(f"{path.name}: no such SoundFont file")
        return path
    local = sorted(REPO_SOUNDFONTS.glob("*.sf2")) if REPO_SOUNDFONTS.is_dir() else []
    if local:
        return local[0]
    if (SYSTEM_SOUNDFONTS / PREFERRED_SYSTEM_SOUNDFONT).is_file():
        return SYSTEM_SOUNDFONTS / PREFERRED_SYSTEM_SOUNDFONT
    system = sorted(p for p in SYSTEM_SOUNDFONTS.glob("*.sf2") if p.is_file()) if SYSTEM_SOUNDFONTS.is_dir() else []
    if system:
        return system[0]
    return _bundled_soundfont()


def events(piece: Piece, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Note events sorted by time in samples, note-offs before note-ons at the same sample.
    Returns (sample, is_on, pitch, velocity), each (2N,)."""
    n = piece.notes
    samples_per_step = piece.seconds_per_step * sample_rate
    on = np.rint(n[:, 0] * samples_per_step).astype(np.int64)
    off = np.rint((n[:, 0] + n[:, 1]) * samples_per_step).astype(np.int64)
    sample = np.concatenate([off, on])
    is_on = np.repeat(np.array([0, 1], np.int64), len(n))
    pitch = np.concatenate([n[:, 2], n[:, 2]])
    velocity = np.concatenate([np.zeros(len(n), np.int64), n[:, 3]])
    order = np.lexsort((pitch, is_on, sample))
    return sample[order], is_on[order], pitch[order], velocity[order]


class Synth:
    """An open FluidSynth synthesiser playing General MIDI ``program`` (0 = acoustic grand piano) on one
    channel, rendering mono float32 audio on demand: ``note_on``/``note_off`` at the current sample, then
    ``advance(n)`` returns the next ``n`` samples. ``render`` plays a whole piece through one; the
    playground's live audio (maia/live.py) keeps one open per variation and appends to what was heard.
    Raises SynthUnavailable when FluidSynth or the SoundFont cannot be loaded. Use as a context manager
    or call ``close``."""

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE, sf2_path: str | Path | None = None, *, program: int = 0):
        sf2 = find_soundfont(sf2_path)
        if sf2 is None:
            raise SynthUnavailable(
                f"no SoundFont found: set MAIA_SOUNDFONT, put a .sf2 in {REPO_SOUNDFONTS}, "
                "or run `sudo apt-get install fluid-soundfont-gm`"
            )
        fs = _load_fluidsynth()
        self.sample_rate = int(sample_rate)
        # Float output avoids the clipping of the s16 path on dense chords.
        self._write = ctypes.CDLL(fs.lib).fluid_synth_write_float
        ptr, int_ = ctypes.c_void_p, ctypes.c_int  # (synth, len, lout, loff, lincr, rout, roff, rincr)
        self._write.argtypes = [ptr, int_, ptr, int_, int_, ptr, int_, int_]
        self._write.restype = ctypes.c_int
        # 16 MIDI channels (not pyfluidsynth's 256); only the presets used get their samples loaded.
        # Chorus smears a piano, so it is off; FluidSynth's default reverb stays.
        settings = {"synth.dynamic-sample-loading": 1, "synth.chorus.active": 0}
        self._synth = fs.Synth(gain=0.5, samplerate=float(sample_rate), channels=16, **settings)
        sfid = self._synth.sfload(str(sf2))
        if sfid < 0:
            self.close()
            raise SynthUnavailable(f"{sf2.name}: FluidSynth cannot load this SoundFont")
        self._synth.program_select(0, sfid, 0, program)

    def note_on(self, pitch: int, velocity: int) -> None:
        self._synth.noteon(0, int(pitch), int(velocity))

    def note_off(self, pitch: int) -> None:
        self._synth.noteoff(0, int(pitch))

    def advance(self, frames: int) -> np.ndarray:
        """The next ``frames`` samples, mono float32 (the mean of FluidSynth's two channels)."""
        out = np.zeros((max(0, int(frames)), 2), np.float32)  # interleaved stereo, written in place
        if len(out):
            at = out.ctypes.data  # left samples at even, right at odd float32 slots
            self._write(self._synth.synth, len(out), at, 0, 2, at, 1, 2)
        return out.mean(axis=1)

    def play(self, events: tuple[np.ndarray, ...], start: int, stop: int) -> np.ndarray:
        """Audio of samples [start, stop) with ``events`` (sorted, from ``events``) applied at their
        samples: one before ``start`` applies at ``start``, one at or after ``stop`` is not applied."""
        parts, t = [], start
        for s, o, p, v in zip(*(e.tolist() for e in events), strict=True):
            if s >= stop:
                break
            s = max(s, t)
            parts.append(self.advance(s - t))
            t = s
            if o:
                self.note_on(p, v)
            else:
                self.note_off(p)
        parts.append(self.advance(stop - t))
        return np.concatenate(parts)

    def close(self) -> None:
        if self._synth is not None:
            self._synth.delete()
            self._synth = None

    def __enter__(self) -> Synth:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def normalise(audio: np.ndarray) -> np.ndarray:
    """The one level rule of a finished piece's audio (the WAV of the page, the gallery and the CLI): scales it so
    its peak is PEAK (0.9, -0.9 dBFS); silence (FluidSynth's noise floor) becomes all zeros.

    Peak normalisation rather than a loudness target: a piano's loudness is part of the music, and a loudness
    target still needs this peak ceiling, which binds on the pieces that differ most. Measured with
    ``python -m bench.audio_levels`` (docs/playground.md), the shipped prompts and a sparse and a dense hand-made
    piece land within about 10 dB RMS of one another with no sample clipped; the quietest, the Lacrimosa, is
    quiet because it is soft around one loud climax, so an RMS target would lower the others rather than raise
    it. At a fixed gain (the live stream's) the same pieces span about 34 dB RMS."""
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak > SILENCE:
        return (audio * (PEAK / peak)).astype(np.float32, copy=False)
    return np.zeros_like(audio, dtype=np.float32)


def render(
    piece: Piece,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    sf2_path: str | Path | None = None,
    *,
    program: int = 0,
    tail_seconds: float = TAIL_SECONDS,
) -> np.ndarray:
    """Renders a piece with FluidSynth (General MIDI ``program``, 0 = acoustic grand piano).

    Returns mono float32 audio of ``piece.duration_seconds + tail_seconds`` seconds at the level of
    ``normalise`` (peak 0.9; silence stays all zeros). Raises SynthUnavailable when FluidSynth or the SoundFont cannot
    be loaded."""
    total = round((piece.duration_seconds + tail_seconds) * sample_rate)
    with Synth(sample_rate, sf2_path, program=program) as synth:
        if total == 0:
            return np.zeros(0, np.float32)
        audio = synth.play(events(piece, sample_rate), 0, total)
    return normalise(audio)


def write_wav(audio: np.ndarray, path: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Path:
    """Writes mono (T,) or stereo (T, 2) float audio in [-1, 1] as a 16-bit PCM WAV file."""
    path = Path(path)
    audio = np.asarray(audio, np.float32)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    pcm = np.clip(np.rint(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return path
