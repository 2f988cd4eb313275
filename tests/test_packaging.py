"""What ships: `pip install .` (not editable) finds the shipped models and composes; the Python version named
by the Space, pyproject.toml and the Makefile agree; every shipped model card carries its license and data."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from maia.encoding import read
from training.model_card import LICENSE, card

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SHIPPED = sorted(p.parent for p in (ROOT / "assets" / "models").glob("*/config.json"))


def front_matter(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n"), f"{path} has no front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_the_package_lists_every_maia_folder():
    """[tool.setuptools].packages is a list (so assets/ can install as maia/assets/): it must name every package."""
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "maia").rglob("__init__.py")
               if "__pycache__" not in p.parts}
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert folders <= packages and packages - folders == {"maia.assets"}
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"maia.assets": "assets"}


@pytest.mark.slow
def test_pip_install_finds_the_shipped_models(tmp_path):
    """A non-editable install into a fresh venv, no network: `maia info` lists the installed copy's models and
    `maia generate` composes with them from another folder. The venv sees this interpreter's packages (torch,
    ...) through a .pth line: `--system-site-packages` alone would give the base Python's, not the test venv's."""
    if not SHIPPED:
        pytest.skip("no shipped models in assets/models/")
    src = tmp_path / "src"  # a copy, so the build's build/ and *.egg-info stay out of the working tree
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "maia", src / "maia", ignore=skip)
    for part in ("models", "prompts"):
        shutil.copytree(ROOT / "assets" / part, src / "assets" / part, ignore=skip)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True,
                   timeout=60)
    bindir = venv / "bin"
    purelib = Path(subprocess.run([bindir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after the venv's own: maia comes from the venv
    r = subprocess.run([sys.executable, "-m", "pip", "--python", bindir / "python", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--no-index", src], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    shutil.rmtree(src)  # nothing of the source is left to find

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1", "MAIA_DEVICE": "cpu"}
    info = subprocess.run([bindir / "maia", "info"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr[-2000:]
    installed = purelib / "maia" / "assets" / "models"
    for folder in SHIPPED:
        assert f"model {folder.name}: " in info.stdout and str(installed / folder.name) in info.stdout
    assert str(ROOT) not in info.stdout  # the installed copy, not this checkout
    gen = subprocess.run([bindir / "maia", "generate", "--tokens", "16", "--seed", "1", "-o", "x.mid"], cwd=work,
                         env=env, capture_output=True, text=True, timeout=180)
    assert gen.returncode == 0, gen.stderr[-2000:]
    piece = read(work / "x.mid")
    assert len(piece) > 0
    assert "wrote x.mid" in gen.stderr
    prompt = (purelib / "maia" / "assets" / "prompts" / "lacrimosa.mid")
    assert prompt.is_file() and prompt.read_bytes() == (ROOT / "assets" / "prompts" / "lacrimosa.mid").read_bytes()


def test_one_python_version_everywhere():
    """The Space builds on Python 3.10 unless its front matter names one; the pins need 3.11."""
    space = str(front_matter(ROOT / "README.md")["python_version"])
    requires = PYPROJECT["project"]["requires-python"]
    make = re.search(r"^PYTHON \?= python(\d+\.\d+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    ruff = PYPROJECT["tool"]["ruff"]["target-version"]
    assert space == make == "3.11", (space, make)
    assert requires == f">={space}"
    assert ruff == "py" + space.replace(".", "")


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_model_card_license_and_datasets(folder):
    meta = front_matter(folder / "README.md")
    assert meta["license"] == LICENSE == "cc-by-nc-sa-4.0"
    assert "fosfrancesco/asap-dataset" in meta["datasets"]  # the CC BY-NC-SA data that sets the terms
    assert all(isinstance(d, str) and "/" in d for d in meta["datasets"])
    notes = ROOT / "training" / "cards" / f"{folder.name}.md"
    regenerated = card(folder, notes.read_text() if notes.is_file() else "")
    assert regenerated.split("---\n", 2)[1] == (folder / "README.md").read_text().split("---\n", 2)[1]


def test_readme_states_both_licenses():
    text = (ROOT / "README.md").read_text()
    license_section = text.split("## License", 1)[1]
    assert "MIT" in license_section and "CC BY-NC-SA 4.0" in license_section and "non-commercial" in license_section
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
