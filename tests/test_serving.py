"""Tests for maia/serving.py: a server's state is one object built from its Limits, and two of them in one process
never see each other's limits, models, folders or Stop buttons."""

from pathlib import Path

import pytest

from maia import playground
from maia.errors import InputError
from maia.limits import Limits
from maia.serving import Serving

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SETTINGS = dict(composer="bach", top_k=5, temperature=1.0, seed=1, variations=1, interval=0.0, audio=False)


def test_two_servings_in_one_process_keep_their_own_limits_models_and_folders(tiny_models_dir, tmp_path, tiny_midi):
    other = tmp_path / "models"
    (other / "solo").mkdir(parents=True)
    for f in (tiny_models_dir / "gpt").iterdir():  # the tiny gpt again, under another name in another folder
        (other / "solo" / f.name).symlink_to(f)
    short = Serving(Limits(models_dir=str(tiny_models_dir), time_budget=0.5), requests_dir=tmp_path / "short")
    long = Serving(Limits(models_dir=str(other), time_budget=60.0), requests_dir=tmp_path / "long")

    assert short.model_choices() == ["gpt", "lstm", "fim"] and long.model_choices() == ["solo"]
    assert (short.time_budget(), long.time_budget()) == (0.5, 60.0)
    with pytest.raises(InputError, match="unknown model 'gpt'; installed: solo"):
        long.load("gpt")
    net = short.load("gpt")[0]
    assert short.load("gpt")[0] is net and Serving(short.limits).load("gpt")[0] is not net  # a cache each

    # the two streams interleaved, step by step: each keeps to its own budget and writes into its own folder
    streams = {"cut": playground.stream(str(tiny_midi), model="gpt", tokens=4096, serving=short, **SETTINGS),
               "whole": playground.stream(str(tiny_midi), model="solo", tokens=24, serving=long, **SETTINGS)}
    updates = {name: [] for name in streams}
    while streams:
        for name, stream in list(streams.items()):
            update = next(stream, None)
            if update is None:
                del streams[name]
            else:
                updates[name].append(update)
    cut_last, whole_last = updates["cut"][-1], updates["whole"][-1]
    assert "stopped at the time limit" in cut_last.status and "time limit" not in whole_last.status
    assert any("(0.5 s)" in w for u in updates["cut"] for w in u.warnings)
    assert whole_last.status.startswith("done: 24/24 tokens") or "reached the end" in whole_last.status
    assert cut_last.outputs[0].midi.parent.parent == tmp_path / "short"
    assert whole_last.outputs[0].midi.parent.parent == tmp_path / "long"


def test_the_stop_buttons_and_the_default_are_each_servings_own(tiny_models_dir):
    a, b = Serving(Limits(models_dir=str(tiny_models_dir))), Serving(Limits(models_dir=str(tiny_models_dir)))
    with a.stops.running("session") as stop_a, b.stops.running("session") as stop_b:
        assert a.stops.stop("session") and stop_a.is_set() and not stop_b.is_set()
    assert Serving.default() is Serving.default() and Serving.default() not in (a, b)
    assert Serving.default().limits == Limits() and Serving.default().pool is None  # never started: samples here


def test_a_serving_sweeps_only_what_its_own_keep_files_says(tmp_path):
    import os
    import time

    folder = tmp_path / "requests"
    keeps, sweeps = Serving(Limits(keep_files=3600), requests_dir=folder), Serving(Limits(keep_files=60),
                                                                                   requests_dir=folder)
    made = keeps.new_request_folder()
    then = time.time() - 600  # ten minutes old: within one's hour, past the other's minute
    os.utime(made, (then, then))
    keeps.new_request_folder()
    assert made.exists()
    sweeps.new_request_folder()
    assert not made.exists() and len(list(Path(folder).iterdir())) == 2


def test_a_running_requests_folder_outlasts_a_short_keep_files(tiny_models_dir, tmp_path, tiny_midi):
    """A request that runs longer than keep_files (a busy machine, a long piece) keeps its folder while it runs,
    though other requests sweep meanwhile; once it has finished, the next request sweeps it."""
    serving = Serving(Limits(models_dir=str(tiny_models_dir), keep_files=0.0), requests_dir=tmp_path / "requests")
    updates = playground.stream(str(tiny_midi), model="gpt", tokens=48, serving=serving, **SETTINGS)
    next(updates)  # running: its folder holds the first update's files
    (running,) = (tmp_path / "requests").iterdir()
    serving.new_request_folder()  # another request sweeps everything older than 0 s but the running one
    assert running.is_dir()
    *_, last = updates
    assert last.done and last.outputs[0].midi.is_file()
    serving.new_request_folder()
    assert not running.exists()
