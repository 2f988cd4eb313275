"""Tests for the playground (maia/playground.py) and the page's handler (app.py), called directly with the
tiny random-init models of conftest.py."""

import importlib
from pathlib import Path

import pytest

from maia import playground
from maia.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SETTINGS = dict(composer="bach", model="gpt", tokens=48, top_k=5, temperature=1.0, seed=1)


@pytest.fixture
def models(tiny_models_dir, monkeypatch):
    monkeypatch.setenv("MAIA_MODELS_DIR", str(tiny_models_dir))
    return tiny_models_dir


def run(prompt_midi, variations=1, **kw):
    return list(playground.stream(prompt_midi, **{**SETTINGS, **kw}, variations=variations, interval=0.0))


def test_stream_returns_files_that_exist(models, tiny_midi):
    updates = run(str(tiny_midi), variations=2)
    first, last = updates[0], updates[-1]
    assert len(updates) > 2 and last.done and not first.done
    assert "48/48 tokens" in last.status or "reached the end" in last.status
    # The first update shows the prompt before any token is sampled.
    assert first.status.startswith("0/48 tokens")
    assert len(last.outputs) == 2
    for out in last.outputs:
        assert out.midi.suffix == ".mid" and out.midi.stat().st_size > 0
        assert out.roll.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert out.audio is None or out.audio.read_bytes()[:4] == b"RIFF"
        assert out.musicxml is not None and out.musicxml.stat().st_size > 0
        assert out.analysis.startswith("Key: ") and " notes · " in out.analysis
    assert last.outputs[0].midi.read_bytes() != last.outputs[1].midi.read_bytes()
    # Every update's files live in its own folder; intermediate ones are cleaned up as the stream goes.
    assert len({u.outputs[0].roll for u in updates}) == len(updates)
    assert not updates[0].outputs[0].roll.exists()


def test_each_request_has_its_own_folder(models):
    a = run(None)[-1].outputs[0].midi
    b = run(None)[-1].outputs[0].midi
    assert a.parent != b.parent and a.exists() and b.exists()
    assert a.read_bytes() == b.read_bytes()  # same seed, same music, different files


def test_lstm_and_unknown_models(models):
    assert playground.model_choices() == ["gpt", "lstm"]
    assert run(None, model="lstm")[-1].done
    for bad in ["sparse", str(models / "gpt"), "../gpt", ""]:
        with pytest.raises(InputError, match="unknown model"):
            run(None, model=bad)


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("notes.txt", b"hello", "upload a MIDI file"),
        ("fake.mid", b"not a midi file at all", "not a MIDI file"),
        ("empty.mid", b"", "empty"),
        ("cut.mid", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x10\x00\x00\x90", "corrupt"),
    ],
)
def test_bad_upload_is_a_clear_error_and_the_next_request_works(models, tmp_path, tiny_midi, name, data, message):
    bad = tmp_path / name
    bad.write_bytes(data)
    with pytest.raises(InputError, match=message):
        run(str(bad))
    assert run(str(tiny_midi))[-1].done


def test_bad_settings_are_clear_errors(models):
    with pytest.raises(InputError, match="unknown composer"):
        run(None, composer="nobody")
    with pytest.raises(InputError, match="top-k"):
        run(None, top_k=0)
    with pytest.raises(InputError, match="variations"):
        run(None, variations=5)
    with pytest.raises(InputError, match="numbers"):
        run(None, tokens="many")


def test_without_fluidsynth_the_roll_and_midi_still_come(models, monkeypatch):
    import maia.synth

    monkeypatch.setattr(maia.synth, "fluidsynth_available", lambda: False)
    updates = run(None)
    assert any("fluidsynth" in w for w in updates[0].warnings)
    last = updates[-1].outputs[0]
    assert last.audio is None and last.roll.exists() and last.midi.exists()


def test_composer_choices_come_from_the_vocabulary(models):
    assert playground.composer_choices("gpt") == [("Bach", "bach"), ("Mozart", "mozart"), ("Chopin", "chopin"),
                                                 ("Any (unknown)", "unknown")]


def test_continue_uses_a_variation_as_the_next_prompt(models):
    midi = run(None, tokens=32)[-1].outputs[0].midi
    prompt = playground.continue_from(str(midi))
    longer = run(prompt, tokens=32)[-1].outputs[0].midi
    from maia.encoding import read

    assert len(read(longer)) >= len(read(midi))
    with pytest.raises(InputError, match="nothing to continue"):
        playground.continue_from(None)


# ---- app.py ---------------------------------------------------------------------------------------
@pytest.fixture
def app(models):
    import app

    return importlib.reload(app)  # its dropdowns read MAIA_MODELS_DIR when the page is built


def test_app_handler_streams_the_page_values(app, tiny_midi):
    values = list(app.generate(str(tiny_midi), "bach", "gpt", 32, 5, 1.0, 3, 2))
    last = values[-1]
    assert len(last) == 5 * app.MAX_VARIATIONS + 1
    midi, audio, roll, musicxml, analysis = last[:5]
    files = (midi, roll, musicxml) if audio is None else (midi, audio, roll, musicxml)
    assert all(isinstance(f, str) and Path(f).is_file() for f in files)  # Gradio's File wants str, not Path
    assert analysis.startswith("Key:")
    assert last[5] is not None and last[10] is None  # variation 2 filled, variation 3 empty
    assert last[-1].startswith("done")


def test_app_handler_turns_errors_into_gr_error(app, tmp_path):
    import gradio as gr

    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"garbage")
    with pytest.raises(gr.Error, match="not a MIDI file"):
        list(app.generate(str(bad), "bach", "gpt", 32, 5, 1.0, 3, 1))


def test_app_api_is_named_generate_with_the_documented_parameters(app):
    info = app.demo.get_api_info()
    endpoint = info["named_endpoints"]["/generate"]
    names = [p["parameter_name"] for p in endpoint["parameters"]]
    assert names == ["prompt_midi", "composer", "model", "tokens", "top_k", "temperature", "seed", "variations"]
    assert list(info["named_endpoints"]) == ["/generate"]  # the page's helpers are not part of the API
