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


def test_one_model_registry():
    """The order models are offered in is defined once (maia.registry, re-exported by maia.checkpoint): the
    app's list, the CLI's default and the default model all come from it."""
    from maia import checkpoint, playground

    sources = {f.name: f.read_text() for f in (ROOT / "maia").rglob("*.py")}
    assert [n for n, s in sources.items() if "PREFERRED_MODELS = " in s] == ["registry.py"]
    assert playground.model_choices() == list(checkpoint.installed_models())
    assert checkpoint.default_model() == next(iter(checkpoint.installed_models()))
