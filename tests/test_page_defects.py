"""Issue 21's defects that live outside the browser, one test each, named after the defect (the browser ones
are in tests/test_browser.py): uploads, tempo, API values, log lines, the key line, permalinks, the
composer, accidentals and steering."""

import importlib
import logging
from pathlib import Path

import numpy as np
import pytest

from maia import options, permalinks, playground
from maia.encoding import Piece, read
from maia.limits import Limits
from maia.serving import Serving

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def serving(tiny_models_dir):
    """The tiny models' Serving: what this file's requests run with."""
    return Serving(Limits(models_dir=str(tiny_models_dir)))


@pytest.fixture
def app(tiny_models_dir, monkeypatch):
    import app

    monkeypatch.setenv("MAIA_MODELS_DIR", str(tiny_models_dir))
    return importlib.reload(app)


def test_defect_08_kar_and_smf_uploads_are_accepted(app, tiny_midi, tmp_path):
    from gradio.data_classes import FileData

    for suffix in (".kar", ".smf", ".MID"):
        path = tmp_path / f"song{suffix}"
        path.write_bytes(tiny_midi.read_bytes())
        assert app.prompt_midi.preprocess(FileData(path=str(path))) == str(path)  # Gradio lets it through
        last = list(app.generate(str(path), "bach", "gpt", 16, 5, 1.0, 1, 1))[-1]
        assert last[-1].startswith("done")
    text = tmp_path / "notes.txt"
    text.write_text("not music")
    with pytest.raises(Exception, match="Invalid file type"):
        app.prompt_midi.preprocess(FileData(path=str(text)))


def test_defect_09_a_prompt_with_tempo_changes_keeps_the_speed_it_is_heard_at(tmp_path):
    """100 qpm for one bar, then 120: the piece read back lasts as long as the file sounds, not 20% longer."""
    from symusic import Note, Score, Tempo, Track

    score = Score(480)
    score.tempos.extend([Tempo(0, qpm=100.0), Tempo(4 * 480, qpm=120.0)])
    track = Track(name="piano", program=0)
    track.notes.extend([Note(q * 480, 480, 60 + q % 12, 80) for q in range(32)])
    score.tracks.append(track)
    path = tmp_path / "tempo-change.mid"
    score.dump_midi(str(path))
    heard = score.to("second").end()  # seconds, by the tempo map
    piece = read(path)
    assert piece.duration_seconds == pytest.approx(heard, rel=0.01)
    assert 110 < piece.tempo_qpm < 120


def test_defect_09_the_continuation_keeps_the_prompts_heard_tempo(serving, tmp_path):
    from symusic import Note, Score, Tempo, Track

    score = Score(480)
    score.tempos.extend([Tempo(0, qpm=100.0), Tempo(4 * 480, qpm=120.0)])
    track = Track(name="piano", program=0)
    track.notes.extend([Note(q * 480, 480, 60 + q % 12, 80) for q in range(32)])
    score.tracks.append(track)
    path = tmp_path / "tempo-change.mid"
    score.dump_midi(str(path))
    update = list(playground.stream(str(path), "bach", "gpt", 16, 5, 1.0, 1, 1, interval=0.0, audio=False,
                                  serving=serving))[-1]
    assert read(update.outputs[0].midi).tempo_qpm == pytest.approx(read(path).tempo_qpm, rel=1e-3)


@pytest.mark.parametrize("field, value, message", [
    ("tokens", "abc", "tokens"),
    ("top_k", "many", "top-k"),
    ("temperature", "hot", "temperature"),
    ("seed", 99999999999999999999999, "99999999999999999999999"),
    ("seed", 1e23, "seed"),
    ("seed", -1, "seed"),
    ("variations", 2.5, "variations"),
    ("key_strength", "x", "key strength"),
    ("lowest", "low", "lowest"),
])
def test_defect_10_bad_api_values_get_one_line_messages(app, field, value, message):
    """A bad value sent to /generate reaches maia as sent and gets its one-line message, which names the setting
    (and the seed as typed, not as a rounded float). tests/test_browser.py sends them through gradio_client."""
    import gradio as gr

    endpoints = {fn.api_name: fn for fn in app.demo.fns.values()}
    assert endpoints["generate"].preprocess is False  # the value reaches maia as sent (Gradio's checks fail on it)
    passed = value
    values = dict(prompt_midi=None, composer="bach", model="gpt", tokens=16, top_k=5, temperature=1.0, seed=1,
                  variations=1)
    with pytest.raises(gr.Error) as e:
        list(app.generate(**{**values, field: passed}))
    text = str(e.value)
    assert message in text and "\n" not in text and "internal error" not in text
    if field == "seed" and value > 0:  # not as a rounded float
        assert "e+" not in text and "99999999999999991611392" not in text


def test_defect_14_a_users_mistake_is_one_log_line(app, tmp_path, caplog, monkeypatch):
    """A bad file or a value out of range: no traceback from Gradio (print_exception off), one line in maia's
    log; a bug keeps its traceback."""
    import gradio as gr

    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"garbage")
    caplog.set_level(logging.INFO, logger="maia")
    for call in (lambda: app.generate(str(bad), "bach", "gpt", 16, 5, 1.0, 1, 1),
                 lambda: app.generate(None, "bach", "gpt", 16, 99, 1.0, 1, 1)):
        caplog.clear()
        with pytest.raises(gr.Error) as e:
            list(call())
        assert e.value.print_exception is False  # Gradio prints no traceback
        records = [r for r in caplog.records if r.name == "maia"]
        assert len(records) == 1 and records[0].exc_info is None and "\n" not in records[0].getMessage()
    # a bug: the traceback stays, in maia's log
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")
        yield

    caplog.clear()
    monkeypatch.setattr(app.playground, "stream", broken)
    with pytest.raises(gr.Error, match="internal error"):
        list(app.generate(None, "bach", "gpt", 16, 5, 1.0, 1, 1))
    assert any(r.exc_info for r in caplog.records)


def arpeggio_piece(pitches, tempo=100.0) -> Piece:
    q = 12
    notes = np.array([(i * q // 2, q // 2, p, 80) for i, p in enumerate(pitches)], np.int64)
    return Piece(notes, q, tempo, (4, 4))


def test_defect_07_pitches_are_spelt_in_the_key_with_only_the_needed_accidentals():
    """D major: F# and C# are covered by the signature, so no <accidental> on them; a C natural shows its natural
    once in its bar. Under four flats (F minor / Ab major) the black keys are spelt Db, Eb, Ab, Bb, not as sharps."""
    import re

    from maia.notation import musicxml

    d_major = arpeggio_piece([62, 66, 69, 74, 73, 71, 69, 66, 62, 66, 69, 74, 73, 71, 69, 66, 60, 60, 62, 64])
    xml = musicxml(d_major)
    assert "<fifths>2</fifths>" in xml
    assert re.findall(r"<accidental>(\w+)</accidental>", xml) == ["natural"]  # the C natural, once in its bar
    assert "<alter>-1</alter>" not in xml
    f_minor = arpeggio_piece([65, 68, 72, 77, 73, 72, 68, 65, 70, 73, 77, 70, 63, 67, 70, 75, 65, 68, 72, 77])
    xml = musicxml(f_minor)
    assert "<fifths>-4</fifths>" in xml
    assert "<alter>1</alter>" not in xml  # no sharps under four flats
    steps = re.findall(r"<step>(\w)</step>\s*<alter>(-?\d)</alter>", xml)
    assert steps and all(alter == "-1" for _, alter in steps) and {"A", "D", "B", "E"} >= {s for s, _ in steps}
    assert "<accidental>" not in xml.replace("<accidental>natural</accidental>", "")  # the signature says it


def test_defect_12_the_key_line_reports_the_locked_key(serving):
    """Locked to F# major at strength 1, the line names F♯ major (the lock), whatever Krumhansl-Schmuckler
    makes of the notes; and the sheet's signature is F# major's six sharps."""
    updates = list(playground.stream(None, "bach", "gpt", 64, 5, 1.0, 3, 1, key="F# major", interval=0.0,
                                     audio=False, serving=serving))
    last = updates[-1].outputs[0]
    assert last.analysis.startswith("Key: F♯ major (locked)"), last.analysis
    assert "<fifths>6</fifths>" in last.musicxml.read_text()
    free = list(playground.stream(None, "bach", "gpt", 64, 5, 1.0, 3, 1, interval=0.0, audio=False,
                                  serving=serving))[-1]
    assert "locked" not in free.outputs[0].analysis and free.outputs[0].analysis.startswith("Key: ")


def test_defect_11_changing_the_model_keeps_the_composer_it_knows(serving, tmp_path):
    assert options.composer_for("lstm", "mozart", serving) == ("mozart", None)  # lstm knows Mozart: kept
    # a model without Haydn: the composer changes, and a line says so
    from helpers import tiny_model

    from maia.checkpoint import save_model
    from maia.vocab import Vocab

    root = tmp_path / "models"
    for name, composers in (("gpt", ("haydn", "bach")), ("lstm", ("bach", "chopin"))):
        vocab = Vocab(composers=composers)
        model = tiny_model(name, vocab)
        save_model(root / name, model, name, model.config, vocab, dtype=None)
    value, notice = options.composer_for("lstm", "haydn", Serving(Limits(models_dir=str(root))))
    assert value == "bach" and "does not know Haydn" in notice


def test_defect_13_a_permalink_keeps_the_uploads_name_and_drops_an_unknown_composer(serving, tiny_midi, tmp_path):
    from urllib.parse import parse_qsl, urlsplit

    upload = tmp_path / "My Sonata.mid"
    upload.write_bytes(tiny_midi.read_bytes())
    url = permalinks.permalink("http://x/", str(upload), dict(composer="mozart", model="gpt"), serving)
    back = permalinks.from_link(dict(parse_qsl(urlsplit(url).query)), serving)
    assert Path(back["prompt_midi"]).name == "My Sonata.mid" and back["composer"] == "mozart"
    assert "composer" not in permalinks.from_link({"composer": "zzz", "model": "gpt"}, serving)
    assert "composer" not in permalinks.from_link({"composer": "zzz"}, serving)


def test_defect_04_stop_finishes_what_was_made(serving):
    """Stop (the stream's stop event set mid-way) is a normal end: the last update is a finished piece, with its
    WAV, MusicXML and sheet music, and the status says it was stopped."""
    import json
    import threading

    stop = threading.Event()
    updates = []
    for update in playground.stream(None, "bach", "gpt", 4096, 5, 1.0, 1, 1, interval=0.0, stop=stop, serving=serving):
        updates.append(update)
        if len(updates) == 3:
            stop.set()
    last = updates[-1]
    assert last.done and "stopped" in last.status and "/4096 tokens" in last.status
    out = last.outputs[0]
    assert out.midi.is_file() and out.musicxml is not None and out.musicxml.is_file()
    assert out.audio is not None and out.audio.read_bytes()[:4] == b"RIFF"
    message = json.loads(out.live)
    assert message["done"] and message.get("sheet"), "the roll gets the sheet music of what was made"
    assert int(last.status.split("done: ")[1].split("/")[0]) < 4096


def test_defect_03_04_stop_reaches_the_sessions_running_composition_only():
    """Stops: a Stop sets the running composition's event of that session only; a Stop while the composition waits
    in the queue stops it when it starts; a new Compose (arm) forgets a Stop meant for an earlier one."""
    from maia.serving import Stops

    stops = Stops()
    with stops.running("a") as a, stops.running("b") as b:
        assert stops.stop("a") is True
        assert a.is_set() and not b.is_set()
    assert stops.stop("a") is False  # nothing runs: it waits for the queued composition
    with stops.running("a") as queued:
        assert queued.is_set()
    stops.stop("a")
    stops.arm("a")  # Compose clicked again: the old Stop does not apply
    with stops.running("a") as fresh:
        assert not fresh.is_set()
    with stops.running(None) as alone:  # a call from Python: nothing can stop it
        assert stops.stop(None) is False and not alone.is_set()


def test_friction_a_regenerated_passage_does_not_read_like_a_truncation(serving, tiny_midi):
    last = list(playground.regenerate(str(tiny_midi), 2, 5, "bach", "fim", 5, 1.0, 1, interval=0.0, audio=False,
                                      serving=serving))[-1]
    assert last.done and "reached the end of the piece" not in last.status
    assert "filled the passage" in last.status, last.status


# ---- issue 21's friction, outside the browser (the page's own are in tests/test_browser.py) ---------------------
def _repeated(path, qpm: float, every: int, n: int = 48):
    """A MIDI file of ``n`` notes on E4 and G4, one every ``every`` grid steps (12 a quarter) at ``qpm``."""
    from maia.encoding import normalize_notes

    onset = np.arange(n) * every
    notes = normalize_notes(onset, onset + every, np.where(np.arange(n) % 2, 64, 67), np.full(n, 80),
                            playground.EncodingConfig())
    return Piece(notes, 12, qpm, (4, 4)).write_midi(path)


def test_friction_the_length_hint_gives_the_prompts_pace_or_the_corpus_range(serving, tmp_path):
    """'≈ 26 s of music' for 512 tokens was 7 to 114 s: with a prompt the hint is at the prompt's own pace (a
    dense prompt makes fewer seconds of the same tokens), without one a range from the corpus's paces."""
    lo, _, hi = playground.CORPUS_TOKENS_PER_SECOND
    alone = playground.length_hint(512, serving=serving)
    assert f"usually {512 / hi:.0f}–{512 / lo:.0f} s" in alone and "≈" not in alone, alone
    dense = _repeated(tmp_path / "dense.mid", 120, 3)  # sixteenths
    sparse = _repeated(tmp_path / "sparse.mid", 120, 12)  # quarters
    vocab = serving.vocab_of("gpt")
    for path in (dense, sparse):
        prompt = playground.prepare_prompt(str(path), None, vocab, serving)
        rate = (len(prompt.ids) - 2) / (read(path).duration_seconds)
        hint = playground.length_hint(512, str(path), "gpt", serving)
        assert f"≈ {512 / rate:.0f} s of music at the prompt's pace" in hint
    seconds = [float(playground.length_hint(512, str(p), "gpt", serving).split("≈ ")[1].split(" s")[0])
               for p in (dense, sparse)]
    assert seconds[0] * 2 < seconds[1], seconds
    assert playground.length_hint("abc", serving=serving) == ""


def test_friction_a_long_prompt_is_described_in_seconds_and_bars_not_tokens(serving, tiny_midi):
    """'piano reads the last 767 of the prompt's 1996 tokens' -> seconds and bars: the tiny gpt (a 32-token window)
    hears the end of the 2-bar, 4-second arpeggio."""
    update = next(iter(playground.stream(str(tiny_midi), "bach", "gpt", 16, 5, 1.0, 1, 1, interval=0.0,
                                         audio=False, serving=serving)))
    notice = next(n for n in update.notices if "hears" in n)
    assert notice.startswith("gpt hears the last ") and "s of the prompt's 4 s" in notice, notice
    assert "of its 2 bars" in notice and "token" not in notice, notice


def test_friction_the_register_is_chosen_by_note_names():
    choices = options.register_choices()
    assert choices[0] == ("A0", 21) and choices[-1] == ("C8", 108) and ("C4", 60) in choices
    assert ("F♯3", 54) in choices and len(choices) == 88


def test_friction_the_png_roll_draws_a_piece_from_nothing_in_maias_orange(tmp_path):
    """Composed from nothing (no prompt: 0 grid steps of it), every note is maia's: orange as on the page."""
    from matplotlib.image import imread

    from maia import outputs

    piece = read(_repeated(tmp_path / "p.mid", 100, 6))
    png = outputs.write(piece, roll=tmp_path / "roll.png", prompt_steps=0).roll
    r, _, b = np.moveaxis(imread(png)[..., :3], -1, 0)  # notes are drawn with alpha: tell them by their hue
    orange, blue = (r > b + 0.25).mean(), (b > r + 0.25).mean()
    assert orange > 0.002 and blue == 0, (orange, blue)


def test_friction_the_key_line_agrees_with_the_key_the_piece_ends_in(serving, tiny_midi):
    """'Key: A major' beside 'ends in F♯ minor': a piece made to end in its home key names that key on its line."""
    last = list(playground.stream(str(tiny_midi), "bach", "fim", 32, 5, 1.0, 3, 1, bars=4, end=True,
                                  interval=0.0, audio=False, serving=serving))[-1]
    ending = last.status.split("ends in ")[1].split(" ·")[0]
    assert last.outputs[0].analysis.startswith(f"Key: {ending} (it ends there) · "), (last.outputs[0].analysis,
                                                                                       last.status)
