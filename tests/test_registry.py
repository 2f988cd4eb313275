"""The model registry (maia/registry.py) reads config.json without torch: `python -m maia info`, `encode` and
`decode` answer in a fresh interpreter that never imports it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT

from maia import checkpoint, registry
from maia.models import MODELS

PROMPT = ROOT / "assets" / "prompts" / "lacrimosa.mid"


@pytest.mark.parametrize("argv", [["info"], ["encode", str(PROMPT)], ["encode", str(PROMPT), "--model", "lstm"]])
def test_cli_without_torch(argv, tiny_models_dir):
    """Runs the command in a fresh interpreter, in-process there, then checks sys.modules."""
    code = ("import contextlib, io, sys\nfrom maia.__main__ import main\nout = io.StringIO()\n"
            f"with contextlib.redirect_stdout(out):\n    rc = main({argv!r})\n"
            "assert rc == 0, rc\nassert out.getvalue().strip(), 'no output'\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'safetensors'))\n"
            "assert not loaded, loaded[:5]\n")
    env = {"MAIA_MODELS_DIR": str(tiny_models_dir), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_info_lists_the_models_without_loading_them(tiny_models_dir, capsys, monkeypatch):
    from maia.__main__ import main

    monkeypatch.setenv("MAIA_MODELS_DIR", str(tiny_models_dir))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "model gpt: gpt" in out and "model lstm: lstm" in out and "model fim: gpt" in out


def test_kinds_match_the_model_zoo():
    assert set(registry.KINDS) == set(MODELS)


def test_checkpoint_reexports_the_registry():
    for name in ("CheckpointError", "read_config", "read_vocab", "list_models", "resolve_model", "installed_models",
                 "default_model", "models_root", "DEFAULT_ROOT", "WEIGHTS", "CONFIG"):
        assert getattr(checkpoint, name) is getattr(registry, name)


def test_shipped_assets_are_found():
    assert (registry.DEFAULT_ROOT / "piano" / "config.json").is_file()
    assert (registry.PROMPTS_DIR / "lacrimosa.mid").is_file()
