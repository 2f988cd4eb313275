"""The house rules that keep the layout honest: maia/ (the library) never imports training/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_maia_sources_never_import_training():
    offenders = []
    for f in sorted((ROOT / "maia").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{f.relative_to(ROOT)}: {n}" for n in names if n == "training" or n.startswith("training.")]
    assert offenders == []


def test_importing_every_maia_module_loads_no_training_module():
    mods = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "maia").rglob("*.py")
            if p.name != "__main__.py"]
    code = ("import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods)
            + "print(sorted(m for m in sys.modules if m == 'training' or m.startswith('training.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_only_maia_limits_reads_the_environment():
    """Limits are passed in, not read deep inside: maia/limits.py's Limits.from_env is the one reader of
    os.environ (or os.getenv) in the library."""
    offenders = []
    for f in sorted((ROOT / "maia").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert [o for o in offenders if not o.startswith("maia/limits.py:")] == []
    assert offenders, "maia/limits.py reads the environment"


def test_one_model_registry(tiny_models_dir, tmp_path):
    """The order models are offered in is defined once (maia.registry, re-exported by maia.checkpoint): the
    app's list, the CLI's list and its default model all come from it. Checked on a folder whose names are
    not in alphabetical order of preference, so a list of names kept anywhere else would show."""
    from helpers import maia

    from maia import checkpoint
    from maia.limits import Limits
    from maia.serving import Serving

    sources = {f.name: f.read_text() for f in (ROOT / "maia").rglob("*.py")}
    assert [n for n, s in sources.items() if "PREFERRED_MODELS = " in s] == ["registry.py"]
    root = tmp_path / "models"
    for name, source in [("zeta", "gpt"), ("lstm", "lstm"), ("alpha", "gpt"), ("gpt", "gpt")]:
        (root / name).mkdir(parents=True)
        for f in (tiny_models_dir / source).iterdir():  # only "gpt" gets its weights: the others cannot compose
            if name == "gpt" or f.name == "config.json":
                (root / name / f.name).symlink_to(f)
    offered = ["gpt", "lstm", "alpha", "zeta"]  # the preferred ones in their order, then the rest by name
    assert list(checkpoint.installed_models(root)) == offered
    assert Serving(Limits(models_dir=str(root))).model_choices() == offered
    info = maia("info", models_dir=root)
    assert info.returncode == 0, info.stderr
    assert [line.split()[1].rstrip(":") for line in info.stdout.splitlines() if line.startswith("model ")] == offered
    assert checkpoint.default_model(root) == "gpt"
    out = maia("generate", "--tokens", "4", "-o", tmp_path / "x.mid", models_dir=root)  # composes: with "gpt"
    assert out.returncode == 0 and (tmp_path / "x.mid").exists(), out.stderr
