"""Audio levels: the live stream the page plays while composing, and the finished WAV that the page, the gallery
and the CLI write, for pieces of different density.

Usage: .venv/bin/python -m bench.audio_levels [--soundfont PATH]

Steps:
1. The pieces: the shipped example prompts (assets/prompts/*.mid), a sparse hand-made piece (one soft note per
   half bar) and a dense one (fortissimo ten-note chords on every beat).
2. The live stream: ``maia.live.LiveAudio`` advanced half a second of music at a time and finished, as the page
   streams it (int16 at its own rate and fixed gain).
3. The finished WAV: ``maia.outputs.write(piece, wav=...)``, the one door the page, the gallery and
   ``python -m maia generate --wav`` go through; read back from the file. Twice: rendered again (the CLI's and the
   gallery's way) and from the live stream's samples (``LiveAudio.wav``, the page's way), which must be the same file.
4. Print, per piece, RMS (dBFS, over the whole file) and peak (dBFS) of each, and the samples at full scale
   (|x| >= 32767: clipped), the live stream's level relative to the WAV's, then the CPU seconds per minute of music
   of the live stream's rendering and of each way to the finished WAV.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from maia import outputs
from maia.encoding import Piece, read
from maia.live import LiveAudio

PROMPTS = Path(__file__).resolve().parent.parent / "assets" / "prompts"


def hand_made() -> dict[str, Piece]:
    """A sparse piece (a soft note every half bar, 8 bars) and a dense one (ten notes, fortissimo, on every beat, 8 bars),
    at 120 qpm, 12 steps per quarter."""
    sparse = [(i * 24, 20, 60 + (i * 5) % 12, 40) for i in range(16)]
    chord = (24, 31, 36, 43, 48, 55, 60, 64, 67, 72)
    dense = [(b * 12, 12, p, 127) for b in range(32) for p in chord]
    return {name: Piece(np.array(rows, np.int64), 12, 120.0, (4, 4)) for name, rows in
            (("sparse (hand-made)", sparse), ("dense (hand-made)", dense))}


def db(x: float) -> float:
    return 20 * np.log10(max(x, 1e-10))


def level(pcm: np.ndarray) -> tuple[float, float, int]:
    """int16 samples -> (RMS dBFS, peak dBFS, samples at full scale)."""
    x = pcm.astype(np.float64) / 32767.0
    return db(float(np.sqrt(np.mean(x**2)))), db(float(np.abs(x).max())), int(np.sum(np.abs(pcm) >= 32767))


def live(piece: Piece, soundfont) -> tuple[np.ndarray, int, np.ndarray | None, float]:
    """The page's live stream: LiveAudio advanced half a second at a time, then finished -> (int16, rate, the
    finished WAV's samples made from it, CPU seconds of the stream's rendering)."""
    t0 = time.process_time()
    player = LiveAudio(soundfont=soundfont)
    try:
        every = max(1, round(0.5 / piece.seconds_per_step))
        for step in range(every, piece.end_step + 1, every):
            player.advance(piece, step)
        player.finish(piece)
        took = time.process_time() - t0
        return player.audio(), player.rate, player.wav(piece), took
    finally:
        player.close()


def finished(piece: Piece, path: Path, soundfont, audio=None) -> tuple[np.ndarray, int, float]:
    """The finished WAV through maia.outputs.write, rendered or from ``audio`` -> (int16 read back, rate, CPU seconds
    taken)."""
    t0 = time.process_time()
    files = outputs.write(piece, wav=path, soundfont=soundfont, audio=audio)
    took = time.process_time() - t0
    with wave.open(str(files.audio)) as w:
        return np.frombuffer(w.readframes(-1), "<i2"), w.getframerate(), took


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soundfont", default=None, help="a .sf2 (default: maia.synth's lookup)")
    a = ap.parse_args(argv)
    pieces = {p.name: read(p) for p in sorted(PROMPTS.glob("*.mid"))} | hand_made()
    head = f"{'piece':28} {'s':>5} | {'live: Hz':>8} {'RMS':>6} {'peak':>6} {'clip':>5} |" \
           f" {'WAV: Hz':>7} {'RMS':>6} {'peak':>6} {'clip':>5} | {'live-WAV':>8}"
    print(head + "\n" + "-" * len(head))
    seconds, took = 0.0, np.zeros(3)  # CPU seconds: the stream, the WAV rendered again, the WAV from the stream
    with tempfile.TemporaryDirectory() as tmp:
        for name, piece in pieces.items():
            pcm, rate, samples, streamed = live(piece, a.soundfont)
            wav, wav_rate, again = finished(piece, Path(tmp) / "piece.wav", a.soundfont)
            kept, _, reused = finished(piece, Path(tmp) / "kept.wav", a.soundfont, samples)
            assert np.array_equal(kept, wav), f"{name}: the WAV from the stream is not the WAV rendered again"
            seconds, took = seconds + piece.duration_seconds, took + np.array((streamed, again, reused))
            (lr, lp, lc), (wr, wp, wc) = level(pcm), level(wav)
            print(f"{name:28} {piece.duration_seconds:5.1f} | {rate:8d} {lr:6.1f} {lp:6.1f} {lc:5d} | "
                  f"{wav_rate:7d} {wr:6.1f} {wp:6.1f} {wc:5d} | {lr - wr:8.1f}")
    per_minute = 60 * took / seconds
    print("RMS and peak in dBFS; clip: samples at full scale; live-WAV: the live stream's RMS less the WAV's, dB.")
    print(f"CPU seconds per minute of music ({seconds:.0f} s of music): the live stream {per_minute[0]:.2f}; the "
          f"finished WAV rendered again {per_minute[1]:.2f}, from the stream {per_minute[2]:.3f} (the same file; "
          f"{per_minute[1] / max(per_minute[2], 1e-9):.0f}x less)")


if __name__ == "__main__":
    main()
