"""Bad input never crashes: every file of tests/bad_midi.py goes through the CLI (in this process, and one of
each kind through a real subprocess) and through
the app's handler (app.generate with the tiny models); broken model folders and model names that are paths
are refused with one clear line.

Unusable files must give exactly one line naming the file and the problem (CLI: on stderr, exit 1; app: a
gr.Error), and the next request must still work. Odd but valid files must come out as the music they hold.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bad_midi import MANY_NOTES, MANY_TRACKS, cases, write_all
from helpers import assert_valid_piece, maia, maia_subprocess

from maia.encoding import decode, read
from maia.generate import build_prompt
from maia.vocab import Vocab

ROOT = Path(__file__).resolve().parent.parent
CASES = {c.name: c for c in cases()}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad_midi")
    write_all(out)
    return out


def rows(piece):
    """(onset, duration, pitch) per note."""
    return [tuple(int(x) for x in r[:3]) for r in piece.notes]


# ---- what the odd-but-valid files must read as ---------------------------------------------------
def _many_tracks(p):
    assert len(p) == MANY_TRACKS and set(p.notes[:, 2]) == set(range(40, 100))
    np.testing.assert_array_equal(p.notes[:, 1], 3)  # 120 ticks at 480 tpq = 3 steps


def _many_notes(p):
    assert len(p) == MANY_NOTES
    np.testing.assert_array_equal(p.notes[:, 0], 3 * np.arange(MANY_NOTES))  # a 16th each, running status
    np.testing.assert_array_equal(p.notes[:, 1], 3)


def _pitch_extremes(p):
    given = np.array([0, 5, 20, 21, 108, 109, 120, 127])
    assert (p.notes[:, 2] >= 21).all() and (p.notes[:, 2] <= 108).all()
    np.testing.assert_array_equal(p.notes[:, 2] % 12, given % 12)  # folded by whole octaves
    assert list(p.notes[:, 2]) == [24, 29, 32, 21, 108, 97, 108, 103]


MUSIC = {  # case -> check of the Piece that read() returns
    "notes.txt": lambda p: rows(p) == [(12 * i, 12, 60 + i % 12) for i in range(16)],
    "missing_tracks.mid": lambda p: rows(p) == [(12 * i, 12, 60 + i) for i in range(4)],
    "tempo_1us.mid": lambda p: p.tempo_qpm == 1000.0 and len(p) == 8,  # clamped to TEMPO_RANGE
    "tempo_16s.mid": lambda p: p.tempo_qpm == 10.0 and len(p) == 8,
    "many_tracks.mid": _many_tracks,
    "many_notes.mid": _many_notes,
    "zero_length.mid": lambda p: rows(p) == [(6 * (i + 1), 1, 60 + i) for i in range(8)],  # >= 1 step each
    "pitch_extremes.mid": _pitch_extremes,
    # velocity 0 is a note-off: the key 64 never sounds, and its own note-off is an orphan
    "velocity_extremes.mid": lambda p: [(r[2], r[3]) for r in p.notes.tolist()] == [(60, 1), (62, 127), (65, 64)],
    "data_bytes_over_127.mid": lambda p: list(p.notes[:, 2]) == [60, 61, 62, 63, 67, 68, 69, 70],
    "orphan_note_offs.mid": lambda p: rows(p) == [(0, 12, 60), (12, 12, 61), (24, 12, 62)],
    "unterminated.mid": lambda p: rows(p) == [(0, 12, 64), (12, 12, 65)],
    "running_status.mid": lambda p: (rows(p) == [(0, 12, 60), (0, 12, 64), (0, 12, 67), (12, 12, 62), (12, 12, 65),
                                                 (12, 12, 69)] and list(p.notes[:, 3]) == [80] * 3 + [100] * 3),
}


def test_every_case_is_classified():
    assert {n for n, c in CASES.items() if c.error is None} == set(MUSIC)
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(MUSIC))
def test_odd_files_read_as_music(files, name):
    piece = read(files / name)
    assert_valid_piece(piece)
    assert MUSIC[name](piece) is not False


def test_generator_is_deterministic_and_runs_as_a_script(tmp_path):
    out = subprocess.run([sys.executable, "tests/bad_midi.py", str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == len(CASES)
    for case in cases():
        assert (tmp_path / case.name).read_bytes() == case.data, case.name


# ---- the CLI --------------------------------------------------------------------------------------
def assert_one_line(out: subprocess.CompletedProcess, names: str, pattern: str):
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert names in lines[0] and re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("name", list(CASES))
def test_cli_encode(files, tmp_path, name):
    case, path = CASES[name], files / name
    out = maia("encode", str(path), models_dir=tmp_path)  # no model installed: the default vocabulary
    if case.error:
        assert_one_line(out, path.name, case.error)
        assert out.stdout == ""
    else:
        assert out.returncode == 0 and out.stderr == "", out.stderr
        got = decode(out.stdout.split(), Vocab())
        assert rows(got) == rows(read(path))


@pytest.mark.slow
def test_cli_in_a_real_process(files, tmp_path):
    """The smoke test of the entry point itself (the tests above call maia.__main__.main in this process):
    `python -m maia encode` exits 0 with tokens for music, and 1 with one line and no traceback for a bad file."""
    bad = next(n for n, c in CASES.items() if c.error)
    out = maia_subprocess("encode", str(files / bad), models_dir=tmp_path)
    assert_one_line(out, bad, CASES[bad].error)
    out = maia_subprocess("encode", str(files / "running_status.mid"), models_dir=tmp_path)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert rows(decode(out.stdout.split(), Vocab())) == rows(read(files / "running_status.mid"))


# ---- the app's handler --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(tiny_models_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("MAIA_MODELS_DIR", str(tiny_models_dir))
    import app

    yield importlib.reload(app)  # it reads MAIA_* (Limits.from_env) and builds its dropdowns from them
    mp.undo()


@pytest.fixture
def warnings_shown(monkeypatch):
    import gradio as gr

    shown: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda message="", *a, **k: shown.append(message))
    monkeypatch.setattr(gr, "Info", lambda message="", *a, **k: shown.append(f"info: {message}"))
    return shown


def compose(app, prompt, tokens=16, model="gpt", serving=None):
    """The page's /generate handler; with ``serving``, on that Serving instead of the app's own."""
    return list(app.generate(None if prompt is None else str(prompt), "bach", model, tokens, 5, 1.0, 1, 1,
                             serving=serving or app.SERVING))


def assert_finished(values):
    last = values[-1]
    assert last[-1].startswith("done"), last[-1]
    midi = last[1][0]  # variation 1: live roll, files (the MIDI first), analysis
    assert Path(midi).is_file() and midi.endswith(".mid")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_app_handler(app, files, warnings_shown, name):
    import gradio as gr

    case, path = CASES[name], files / name
    if case.app:
        with pytest.raises(gr.Error) as err:
            compose(app, path)
        message = str(err.value)
        assert path.name in message and re.search(case.app, message) and "\n" not in message, message
        assert_finished(compose(app, None, tokens=8))  # the next request works
    else:
        values = compose(app, path)
        assert_finished(values)
        piece = read(path)
        if build_prompt(Vocab(composers=("bach",)), "bach", piece).cropped:  # longer than a prompt may be
            assert any("prompt is long" in w for w in warnings_shown), warnings_shown
        else:  # the finished MIDI begins with the prompt as read (pitches folded, at least one step long)
            assert set(rows(piece)) <= set(rows(read(values[-1][1][0])))


def test_app_refuses_models_named_by_path(app, tiny_models_dir):
    import gradio as gr

    for bad in ["../../etc", "/etc", "/etc/passwd", str(tiny_models_dir / "gpt"), "gpt/../gpt", "~", "..", "./gpt"]:
        with pytest.raises(gr.Error, match="unknown model"):
            compose(app, None, model=bad)
    assert_finished(compose(app, None, tokens=8))


# ---- limits on work ----------------------------------------------------------------------------------
def test_time_budget_keeps_what_was_made(app, warnings_shown):
    import time

    from maia.serving import Serving

    short = Serving(replace(app.SERVING.limits, time_budget=0.5))
    t = time.monotonic()
    values = compose(app, None, tokens=4096, serving=short)
    assert time.monotonic() - t < 60  # 4096 tokens of the tiny model take longer than the budget allows
    assert_finished(values)
    assert "stopped at the time limit" in values[-1][-1]
    assert any(w.startswith("stopped at the time limit of one request (0.5 s)") for w in warnings_shown), warnings_shown
    made = int(re.search(r"(\d+)/4096 tokens", values[-1][-1]).group(1))
    assert 0 < made < 4096
    assert_finished(compose(app, None, tokens=8))  # the budget is per request: the next one is whole
    assert "time limit" not in compose(app, None, tokens=8)[-1][-1]


def test_prompt_longer_than_the_context_is_announced(app, warnings_shown, tiny_midi):
    from maia.generate import SamplingConfig, prompt_tokens_in_view

    net, _ = app.SERVING.load("gpt")  # block_size 32: the window keeps the composer token + 24 tokens
    assert [prompt_tokens_in_view(net, n, SamplingConfig()) for n in (10, 32, 33, 500)] == [10, 32, 24, 24]
    compose(app, tiny_midi)  # 38 prompt tokens
    # information, not a warning: the model hears the prompt's end (in seconds and bars, issue 21)
    assert any(w.startswith("info: gpt hears the last ") and "of the prompt's 4 s" in w
               for w in warnings_shown), warnings_shown
    warnings_shown.clear()
    compose(app, tiny_midi, model="lstm")  # recurrent: no window, no warning
    assert not any("context" in w for w in warnings_shown)


def test_old_request_folders_are_swept(app):
    import time

    requests = app.SERVING.requests_dir
    requests.mkdir(exist_ok=True)
    old = Path(tempfile.mkdtemp(prefix="maia-", dir=requests))
    (old / "maia-1.wav").write_bytes(b"RIFF")
    then = time.time() - app.SERVING.limits.keep_files - 60
    os.utime(old, (then, then))
    fresh = Path(tempfile.mkdtemp(prefix="maia-", dir=requests))
    midi = Path(compose(app, None, tokens=8)[-1][1][0])
    assert not old.exists() and fresh.exists()
    assert midi.parent.parent == requests and midi.parent not in (old, fresh)
    fresh.rmdir()


def test_old_permalink_uploads_are_swept_like_request_folders(tiny_midi, tmp_path):
    """An upload kept for a link lives as long as a request folder; making a link again keeps it that long again."""
    import time

    from maia.permalinks import permalink
    from maia.serving import Serving

    serving = Serving(uploads_dir=tmp_path / "maia-links")
    serving.uploads_dir.mkdir(parents=True, exist_ok=True)
    old = serving.uploads_dir / ("0" * 32)
    old.mkdir(exist_ok=True)
    (old / "gone.mid").write_bytes(b"MThd")
    then = time.time() - serving.limits.keep_files - 60
    os.utime(old, (then, then))
    link = permalink("http://127.0.0.1:7860/", str(tiny_midi), {}, serving)
    digest = link.split("upload=")[1]
    kept = serving.uploads_dir / digest
    assert not old.exists() and (kept / Path(tiny_midi).name).is_file()
    os.utime(kept, (then, then))
    permalink("http://127.0.0.1:7860/", str(tiny_midi), {}, serving)  # the same upload linked again
    assert kept.stat().st_mtime > then + 30 and kept.exists()


# ---- model folders --------------------------------------------------------------------------------
def broken_copy(src: Path, dst: Path, damage) -> Path:
    import shutil

    shutil.copytree(src, dst)
    damage(dst)
    return dst


def edit(key_path, value):
    def damage(folder):
        cfg = json.loads((folder / "config.json").read_text())
        *keys, last = key_path
        node = cfg
        for k in keys:
            node = node[k]
        node[last] = value
        (folder / "config.json").write_text(json.dumps(cfg))

    return damage


BROKEN_FOLDERS = {  # name -> (damage, command, message)
    "no config": (lambda f: (f / "config.json").unlink(), "encode", "no config.json|no model folder"),
    "config not json": (lambda f: (f / "config.json").write_text("{oops"), "encode", "not valid JSON"),
    "vocab garbage": (edit(["vocab", "config"], "twelve"), "encode", "invalid vocabulary"),
    "vocab pitch range": (edit(["vocab", "config", "pitch_hi"], 22), "encode", "invalid vocabulary"),
    "n_head zero": (edit(["model", "n_head"], 0), "generate", "modulo by zero"),
    "negative width": (edit(["model", "n_embd"], -32), "generate", "negative dimension"),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), "generate", "no model.safetensors"),
}


@pytest.mark.parametrize("case", list(BROKEN_FOLDERS))
def test_cli_broken_model_folder(tiny_models_dir, tmp_path, tiny_midi, case):
    damage, command, message = BROKEN_FOLDERS[case]
    folder = broken_copy(tiny_models_dir / "gpt", tmp_path / "broken_model", damage)
    if command == "encode":
        out = maia("encode", str(tiny_midi), "--model", str(folder), models_dir=tmp_path / "none")
    else:
        out = maia("generate", "--model", str(folder), "--tokens", "4", "-o", str(tmp_path / "out.mid"),
                   models_dir=tmp_path / "none")
        assert not (tmp_path / "out.mid").exists()
    assert_one_line(out, "broken_model", message)


def test_app_with_broken_installed_models(app, tiny_models_dir, tmp_path):
    import gradio as gr

    from maia.options import composer_choices
    from maia.serving import Serving

    root = tmp_path / "models"
    broken_copy(tiny_models_dir / "gpt", root / "gpt", lambda f: None)
    broken_copy(tiny_models_dir / "gpt", root / "badvocab", edit(["vocab", "composers"], "bach"))
    broken_copy(tiny_models_dir / "gpt", root / "noweights", lambda f: (f / "model.safetensors").unlink())
    serving = Serving(replace(app.SERVING.limits, models_dir=str(root)))
    assert composer_choices("badvocab", serving)[-1] == ("Any (unknown)", "unknown")  # the page still builds
    with pytest.raises(gr.Error, match=r"badvocab.*invalid vocabulary"):
        compose(app, None, model="badvocab", serving=serving)
    with pytest.raises(gr.Error, match=r"noweights has no model.safetensors"):
        compose(app, None, model="noweights", serving=serving)
    assert_finished(compose(app, None, tokens=8, serving=serving))


def test_a_model_folder_deleted_or_corrupted_while_serving(app, tiny_models_dir, tmp_path):
    """The operator deletes or overwrites a model the server has already loaded: each request says so in one
    line, the other models keep composing, and a restored folder serves again."""
    import shutil

    import gradio as gr

    from maia.serving import Serving

    root = tmp_path / "models"
    for name in ("gpt", "lstm"):
        broken_copy(tiny_models_dir / name, root / name, lambda f: None)
    serving = Serving(replace(app.SERVING.limits, models_dir=str(root)))
    assert_finished(compose(app, None, tokens=8, serving=serving))  # loaded and cached
    shutil.rmtree(root / "gpt")
    with pytest.raises(gr.Error, match=r"unknown model 'gpt'; installed: lstm"):
        compose(app, None, model="gpt", serving=serving)
    assert_finished(compose(app, None, tokens=8, model="lstm", serving=serving))
    broken_copy(tiny_models_dir / "gpt", root / "gpt", lambda f: (f / "model.safetensors").write_bytes(b"\0" * 64))
    with pytest.raises(gr.Error, match=r"model\.safetensors"):
        compose(app, None, model="gpt", serving=serving)
    shutil.rmtree(root / "gpt")
    broken_copy(tiny_models_dir / "gpt", root / "gpt", lambda f: None)
    assert_finished(compose(app, None, tokens=8, serving=serving))


@pytest.mark.parametrize("where", ["request folder", "files"])
def test_a_full_or_unwritable_temp_folder(app, monkeypatch, tmp_path, where):
    """A disk that refuses the request's folder, or its files halfway through the stream: one line saying the
    server cannot write, and the next request (with the disk back) composes."""
    import errno

    import gradio as gr

    from maia.encoding import Piece
    from maia.serving import Serving

    serving = app.SERVING
    with monkeypatch.context() as mp:
        if where == "request folder":
            blocker = tmp_path / "not-a-folder"
            blocker.write_text("")
            serving = Serving(app.SERVING.limits, requests_dir=blocker / "maia-requests")
        else:
            def full(self, path, *a, **k):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))

            mp.setattr(Piece, "write_midi", full)
        with pytest.raises(gr.Error, match=r"the server cannot write this piece's files \((Not a directory|No space "
                                           r"left on device)\); please try again later"):
            compose(app, None, tokens=8, serving=serving)
    assert_finished(compose(app, None, tokens=8))


class _Payload:
    """Unpickling this runs code: it creates the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pickled_weights_are_never_unpickled(tiny_models_dir, tmp_path):
    import torch

    sentinel = tmp_path / "pwned"
    folder = tmp_path / "pickled_model"

    def damage(f):  # the weights replaced by a pickle (torch.save), and pickles of the usual names beside
        for name in ("model.safetensors", "pytorch_model.bin", "model.pt"):
            torch.save({"weights": _Payload(sentinel)}, f / name)

    broken_copy(tiny_models_dir / "gpt", folder, damage)
    out = maia("generate", "--model", str(folder), "--tokens", "4", "-o", str(tmp_path / "out.mid"),
               models_dir=tmp_path / "none")
    assert_one_line(out, "pickled_model", "not a readable safetensors file")
    assert not sentinel.exists()
    torch.load(folder / "model.pt", weights_only=False)  # the payload is real: loading it *does* run code
    assert sentinel.exists()


def test_no_code_unpickles():
    """Weights load from safetensors only: no torch.load without weights_only=True, no pickle.load."""
    sources = [ROOT / "app.py", *(p for d in ("maia", "training", "bench") for p in (ROOT / d).rglob("*.py"))]
    offenders = []
    for path in sources:
        for k, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bpickle\.loads?\(|\bjoblib\.load\(|allow_pickle=True", line) or (
                re.search(r"\btorch\.load\(", line) and "weights_only=True" not in line
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{k}: {line.strip()}")
    assert not offenders, offenders
