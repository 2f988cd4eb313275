"""maia/outputs.py: the one door through which the playground and the CLI write a finished piece."""

import re
import wave

import numpy as np

from maia import outputs
from maia.encoding import Piece, read

PIECE = Piece(np.array([(0, 12, 50, 70), (0, 12, 62, 80), (12, 12, 65, 80), (24, 24, 38, 60), (24, 24, 69, 90)],
                       np.int64), time_signature=(3, 4))


def test_write_makes_every_file_asked_for(tmp_path):
    files = outputs.write(PIECE, midi=tmp_path / "a.mid", roll=tmp_path / "a.png", musicxml=tmp_path / "a.musicxml",
                          title="maia — test", subtitle="model none, seed 1", prompt_steps=12)
    assert np.array_equal(read(files.midi).notes, PIECE.notes)
    assert files.roll.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files.xml == files.musicxml.read_text(encoding="utf-8") and "maia — test" in files.xml
    assert files.analysis.startswith("Key: D minor") and "5 notes" in files.analysis
    assert files.audio is None
    nothing = outputs.write(PIECE)
    assert (nothing.midi, nothing.roll, nothing.musicxml, nothing.audio) == (None, None, None, None)


def test_an_empty_piece_gets_a_midi_and_no_sheet(tmp_path):
    files = outputs.write(Piece(), midi=tmp_path / "e.mid", musicxml=tmp_path / "e.musicxml")
    assert files.midi.exists() and files.musicxml is None and files.analysis.startswith("Key: ?")


def test_given_audio_is_written_as_heard(tmp_path):
    pcm = (np.sin(np.arange(3200) / 5) * 20000).astype(np.int16)
    files = outputs.write(PIECE, wav=tmp_path / "h.wav", audio=pcm, sample_rate=16000)
    with wave.open(str(files.audio)) as w:
        assert w.getframerate() == 16000 and np.array_equal(np.frombuffer(w.readframes(-1), "<i2"), pcm)


def test_the_cli_writes_through_the_same_door(tiny_models_dir, tmp_path, monkeypatch, capsys):
    from maia.__main__ import main

    monkeypatch.setenv("MAIA_MODELS_DIR", str(tiny_models_dir))
    code = main(["generate", "--composer", "bach", "--tokens", "48", "--seed", "2", "-o", str(tmp_path / "o.mid"),
                 "--wav", str(tmp_path / "o.wav"), "--roll", str(tmp_path / "o.png"),
                 "--musicxml", str(tmp_path / "o.musicxml")])
    err = capsys.readouterr().err
    assert code == 0, err
    piece = read(tmp_path / "o.mid")
    assert outputs.analysis(piece) in err  # the playground's analysis line
    assert (tmp_path / "o.png").stat().st_size > 0
    with wave.open(str(tmp_path / "o.wav")) as w:  # FluidSynth: make test installs it
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(-1), "<i2")
    # the rate and level of the page's WAV (tests/test_app.py): 44.1 kHz, peak 0.9, nothing at full scale
    assert rate == 44100 and abs(np.abs(pcm).max() / 32767 - 0.9) < 1e-3
    again = outputs.sheet_music(piece, tmp_path / "again.musicxml", "maia — bach", "model gpt, seed 2, variation 1")
    def same(xml):  # music21 gives parts and instruments random ids
        return re.sub(r'"([PI])[0-9a-f]{32}"', r'"\1"', xml)

    assert again is not None and same(again[1]) == same((tmp_path / "o.musicxml").read_text(encoding="utf-8"))
