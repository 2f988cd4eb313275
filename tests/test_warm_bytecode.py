"""scripts/warm_bytecode.py, which make test runs while apt-get installs a new machine's Debian packages: what it names
is there to import, it imports maia's modules but never runs the CLI, and the Makefile's kill stops it and its
torch-side child."""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "warm_bytecode.py"


def _script():
    spec = importlib.util.spec_from_file_location("warm_bytecode", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _installed(name: str) -> bool:
    """Whether module ``name`` is there, found on disk without importing it (or gradio, in a process that never
    imports it)."""
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None:
        return False
    if not rest:
        return True
    folder = Path(spec.origin).parent
    for part in rest[:-1]:
        folder = folder / part
    last = rest[-1]
    return (folder / f"{last}.py").exists() or (folder / last / "__init__.py").exists()


def test_every_library_it_names_is_installed():
    warm = _script()
    missing = [n for n in (*warm.TORCH_SIDE, *warm.PAGE_SIDE) if not _installed(n)]
    assert missing == [], f"warm_bytecode.py names modules that are not installed: {missing}"


def test_it_imports_maias_modules_but_never_the_cli():
    names = list(_script()._own_modules())
    assert {"maia", "maia.playground", "maia.models.gpt", "training.train", "bench.soak"} <= set(names), names
    assert not [n for n in names if n.endswith("__main__")]


def test_a_kill_stops_it_and_its_torch_side():
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # the stop is what is tested: nothing written
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], cwd=ROOT, env=env)

    def children():
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    deadline = time.monotonic() + 60
    while not children() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    kids = children()
    assert kids, "the torch-side process never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    for pid in kids:  # killed at once, while its own work (importing torch) takes seconds more
        deadline = time.monotonic() + 0.5
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid), f"the torch-side process {pid} outlived the kill"


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an ended process its parent has not reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
