"""maia.limits: the MAIA_* settings are read once, checked, and passed down to read, validate and build_prompt."""

import numpy as np
import pytest

from maia.encoding import Piece, read
from maia.errors import InputError, MaiaError
from maia.generate import SamplingConfig, build_prompt
from maia.limits import DEFAULT_MAX_BYTES, DEFAULT_TIME_BUDGET, Limits
from maia.vocab import Vocab


def test_defaults_without_settings():
    limits = Limits.from_env({})
    assert limits == Limits() and limits.max_input_bytes == DEFAULT_MAX_BYTES
    assert limits.time_budget == DEFAULT_TIME_BUDGET and limits.models_dir == "" and limits.device == "auto"
    assert limits.sampling == "process"
    assert Limits(concurrency=0).serving_concurrency("cpu") == 2 and Limits(concurrency=3).serving_concurrency("cpu") == 3


def test_every_variable_is_read():
    env = {"MAIA_MAX_MIDI_BYTES": "1000", "MAIA_MAX_QUARTERS": "50", "MAIA_MAX_TOKENS": "64",
           "MAIA_MAX_PROMPT_TOKENS": "32", "MAIA_TIME_BUDGET": "2.5", "MAIA_CONCURRENCY": "3", "MAIA_KEEP_FILES": "60",
           "MAIA_MODELS_DIR": "/srv/models", "MAIA_SOUNDFONT": "/srv/piano.sf2", "MAIA_DEVICE": "cpu",
           "MAIA_SAMPLING": "thread"}
    assert Limits.from_env(env) == Limits(1000, 50, 64, 32, 2.5, 3, 60.0, "/srv/models", "/srv/piano.sf2", "cpu", "thread")
    assert Limits.from_env(env).torch_device() == "cpu"


@pytest.mark.parametrize("env, message", [
    ({"MAIA_TIME_BUDGET": "soon"}, "MAIA_TIME_BUDGET=soon: not a number"),
    ({"MAIA_MAX_TOKENS": "1.5"}, "MAIA_MAX_TOKENS=1.5: not an integer"),
    ({"MAIA_MAX_TOKENS": "0"}, "MAIA_MAX_TOKENS=0: must be at least 1"),
    ({"MAIA_CONCURRENCY": "-1"}, "MAIA_CONCURRENCY=-1: must not be negative"),
    ({"MAIA_DEVICE": "tpu"}, "MAIA_DEVICE=tpu: must be one of auto, cpu, cuda"),
    ({"MAIA_SAMPLING": "fork"}, "MAIA_SAMPLING=fork: must be one of process, thread"),
])
def test_a_bad_value_is_named_not_ignored(env, message):
    with pytest.raises(MaiaError, match=message):
        Limits.from_env(env)


def test_limits_reach_read_validate_and_build_prompt(tmp_path):
    limits = Limits(max_input_bytes=100, max_quarters=8, max_tokens=64, max_prompt_tokens=20)
    long = Piece(np.array([(i * 12, 12, 60 + i % 12, 80) for i in range(16)], np.int64))  # 16 quarter notes
    path = long.write_midi(tmp_path / "long.mid")
    with pytest.raises(InputError, match="over the limit of 100 bytes"):
        read(path, max_bytes=limits.max_input_bytes)
    with pytest.raises(InputError, match="16 quarter notes, over the limit of 8"):
        read(path, max_quarters=limits.max_quarters)
    assert len(read(path)) == 16  # the library's defaults
    with pytest.raises(InputError, match=r"tokens must be 1\.\.64"):
        SamplingConfig(max_new_tokens=65).validate(limits.max_tokens)
    prompt = build_prompt(Vocab(), None, long, max_tokens=limits.max_prompt_tokens)
    assert len(prompt.ids) - 2 <= 20 and prompt.message


def test_the_cli_names_a_bad_setting_in_one_line(monkeypatch, capsys):
    from maia.__main__ import main

    monkeypatch.setenv("MAIA_MAX_TOKENS", "lots")
    assert main(["info"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "maia: MAIA_MAX_TOKENS=lots: not an integer"
