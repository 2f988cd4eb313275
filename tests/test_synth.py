"""Tests for maia/synth.py with the real FluidSynth (installed by `make test` through scripts/sysdeps.sh); only
the missing-library case is simulated."""

import sys
import wave

import numpy as np
import pytest

from maia import synth
from maia.encoding import Piece
from maia.errors import MaiaError
from maia.limits import Limits
from maia.synth import SynthUnavailable, find_soundfont, fluidsynth_available, render, write_wav

SR = 44100
BUNDLED = synth._bundled_soundfont()  # pretty_midi's TimGM6mb.sf2


def piece(rows, qpm=120.0) -> Piece:
    """A Piece from (onset, duration, pitch, velocity) rows; at 120 qpm one step is 1/24 s."""
    return Piece(np.array(rows, np.int64).reshape(-1, 4), 12, qpm, (4, 4))


CHORDS = piece(
    [(0, 12, 60, 90), (0, 12, 64, 80), (0, 12, 67, 80), (12, 12, 62, 70), (24, 24, 55, 100), (24, 24, 59, 60)]
)


def test_find_soundfont_returns_an_existing_sf2():
    sf2 = find_soundfont()
    assert sf2 is not None and sf2.is_file() and sf2.suffix == ".sf2"


def test_find_soundfont_honours_the_operators_choice(tmp_path):
    mine = tmp_path / "my piano.sf2"
    mine.write_bytes(b"RIFF")
    assert find_soundfont(mine) == mine
    assert find_soundfont(Limits.from_env({"MAIA_SOUNDFONT": str(mine)}).soundfont) == mine
    with pytest.raises(SynthUnavailable, match=r"missing\.sf2"):
        find_soundfont(tmp_path / "missing.sf2")


def test_find_soundfont_order(monkeypatch, tmp_path):
    repo, system, empty = tmp_path / "repo", tmp_path / "system", tmp_path / "empty"
    for folder in (repo, system, empty):
        folder.mkdir()
    (repo / "b.sf2").write_bytes(b"RIFF")
    (repo / "a.sf2").write_bytes(b"RIFF")
    (system / "Other.sf2").write_bytes(b"RIFF")
    (system / synth.PREFERRED_SYSTEM_SOUNDFONT).write_bytes(b"RIFF")
    monkeypatch.setattr(synth, "REPO_SOUNDFONTS", repo)
    monkeypatch.setattr(synth, "SYSTEM_SOUNDFONTS", system)
    assert find_soundfont() == repo / "a.sf2"
    monkeypatch.setattr(synth, "REPO_SOUNDFONTS", empty)
    assert find_soundfont() == system / synth.PREFERRED_SYSTEM_SOUNDFONT
    (system / synth.PREFERRED_SYSTEM_SOUNDFONT).unlink()
    assert find_soundfont() == system / "Other.sf2"
    monkeypatch.setattr(synth, "SYSTEM_SOUNDFONTS", empty)
    assert find_soundfont() == BUNDLED and BUNDLED.name == "TimGM6mb.sf2"


def test_fluidsynth_is_installed():
    assert fluidsynth_available(), synth.INSTALL_HINT


@pytest.mark.parametrize("sf2", [None, BUNDLED], ids=["default", "bundled"])
def test_render_length_level_and_peak(sf2):
    audio = render(CHORDS, SR, sf2_path=sf2)
    assert audio.dtype == np.float32 and audio.ndim == 1
    expected = CHORDS.duration_seconds + synth.TAIL_SECONDS  # 2 s of notes + 1 s of release
    assert abs(len(audio) / SR - expected) < 0.1
    assert len(audio) == round(expected * SR)
    assert abs(float(np.abs(audio).max()) - synth.PEAK) < 1e-4
    assert float(np.sqrt(np.mean(audio[: SR * 2] ** 2))) > 0.02  # clearly audible while the notes sound
    assert np.isfinite(audio).all()


def test_render_places_notes_in_time():
    late = piece([(36, 12, 60, 100)])  # one note from 1.5 s to 2 s
    audio = render(late, SR)
    assert float(np.abs(audio[: int(1.45 * SR)]).max()) < 1e-3  # silence before the onset
    assert float(np.abs(audio[int(1.5 * SR) : int(1.7 * SR)]).max()) > 0.3
    assert len(audio) == 3 * SR
    tail = audio[int(2.8 * SR) :]  # the release dies away after the note-off at 2 s
    assert float(np.sqrt(np.mean(tail**2))) < 0.1 * float(np.sqrt(np.mean(audio[int(1.5 * SR) : int(2 * SR)] ** 2)))


def test_render_silence_without_division_by_zero():
    audio = render(Piece(), SR)
    assert len(audio) == round(synth.TAIL_SECONDS * SR)
    assert np.all(audio == 0)


def test_render_tail_and_sample_rate():
    audio = render(CHORDS, 22050, tail_seconds=0.25)
    assert len(audio) == round((CHORDS.duration_seconds + 0.25) * 22050)


def test_write_wav_round_trip(tmp_path):
    audio = render(CHORDS, SR)
    path = write_wav(audio, tmp_path / "out.wav", SR)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SR)
        assert w.getnframes() == len(audio)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.abs(pcm / 32767 - audio).max() < 1 / 32767 + 1e-6


def test_write_wav_clips_out_of_range(tmp_path):
    path = write_wav(np.array([-2.0, -1.0, 0.0, 1.0, 2.0], np.float32), tmp_path / "clip.wav", 8000)
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == 8000
        pcm = np.frombuffer(w.readframes(5), "<i2")
    assert pcm.tolist() == [-32768, -32767, 0, 32767, 32767]


def test_missing_library_raises_with_package_name(monkeypatch):
    # sys.modules[name] = None makes `import fluidsynth` fail the way a missing libfluidsynth does
    monkeypatch.setitem(sys.modules, "fluidsynth", None)
    assert not fluidsynth_available()
    with pytest.raises(SynthUnavailable) as err:
        render(CHORDS, SR)
    assert isinstance(err.value, MaiaError)
    assert "apt-get install fluidsynth" in str(err.value) and "libfluidsynth3" in str(err.value)


def test_missing_or_corrupt_soundfont(tmp_path):
    with pytest.raises(SynthUnavailable, match="no such SoundFont"):
        render(CHORDS, SR, sf2_path=tmp_path / "nope.sf2")
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont" * 10)
    with pytest.raises(SynthUnavailable, match="cannot load"):
        render(CHORDS, SR, sf2_path=bad)


# ---- levels: one rule for every finished WAV, a ceiling on the live stream -------------------------------------
SPARSE = piece([(i * 24, 20, 60 + (i * 5) % 12, 40) for i in range(4)])  # a soft note every half bar, 2 s
DENSE = piece([(b * 12, 12, p, 127) for b in range(4) for p in (24, 31, 36, 43, 48, 55, 60, 64, 67, 72)])  # ff


def dbfs(x) -> tuple[float, float]:
    """(RMS, peak) of float audio in dBFS."""
    x = np.asarray(x, np.float64)
    return 20 * np.log10(np.sqrt(np.mean(x**2))), 20 * np.log10(np.abs(x).max())


@pytest.mark.parametrize("music", [SPARSE, DENSE], ids=["sparse", "dense"])
def test_sparse_and_dense_pieces_land_in_one_level_range(music):
    # FluidSynth's raw RMS differs by about 30 dB between these two; the finished level by a few dB.
    rms, peak = dbfs(render(music, SR))
    assert abs(peak - 20 * np.log10(synth.PEAK)) < 0.01  # -0.9 dBFS: nothing clips, nothing is left quiet
    assert -22 < rms < -10, rms


def test_the_live_stream_never_clips_and_leaves_ordinary_music_alone():
    from maia.live import CEILING, KNEE, LiveAudio, soft_ceiling

    x = np.linspace(-3, 3, 6001, dtype=np.float32)
    y = soft_ceiling(x)
    assert np.array_equal(y[np.abs(x) <= KNEE], x[np.abs(x) <= KNEE])  # below the knee: unchanged
    assert np.all(np.diff(y) >= 0) and np.abs(y).max() < CEILING  # monotone, never at the ceiling
    player = LiveAudio(SR)
    try:
        for step in range(6, DENSE.end_step + 1, 6):
            player.advance(DENSE, step)
        player.finish(DENSE)
        pcm = player.audio()
    finally:
        player.close()
    assert np.abs(pcm.astype(np.int32)).max() < 32767  # raw fortissimo chords at LIVE_GAIN go past full scale
    assert np.abs(pcm.astype(np.int32)).max() > 0.6 * 32767


def test_the_live_streams_samples_are_the_finished_wav_when_the_piece_is_the_music_played():
    """Rendered a few grid steps at a time as the page's stream is, then cut and normalised: bit for bit the WAV
    that maia.synth.render makes of the whole piece (the page then offers it without rendering again). A piece that
    is not the music played (a note made longer after it was released) gets None: render it."""
    from dataclasses import replace

    from maia.live import LIVE_SAMPLE_RATE, LiveAudio

    assert LIVE_SAMPLE_RATE == synth.DEFAULT_SAMPLE_RATE  # the stream's rate is the WAV's
    player = LiveAudio(LIVE_SAMPLE_RATE)
    try:
        for step in range(5, DENSE.end_step + 1, 7):
            player.advance(DENSE, step)
        player.finish(DENSE)
        wav = player.wav(DENSE)
        changed = DENSE.notes.copy()
        changed[0, 1] += 1
        assert player.wav(replace(DENSE, notes=changed)) is None
        assert player.wav(replace(DENSE, notes=DENSE.notes[1:])) is None
    finally:
        player.close()
    assert wav is not None and np.array_equal(wav, render(DENSE, LIVE_SAMPLE_RATE))
