"""Helpers shared by several test modules (tests import these, never each other)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench import webmidi
from maia.encoding import Piece, normalize_notes
from maia.vocab import EncodingConfig

ROOT = Path(__file__).resolve().parents[1]
CFG = EncodingConfig()


def assert_valid_piece(piece: Piece, cfg=CFG):
    """The Piece invariants: int64 (N, 4), sorted by (onset, pitch), durations >= 1, pitches in range,
    velocities 1..127, and a key never sounding twice at once."""
    n = piece.notes
    assert n.dtype == np.int64 and n.ndim == 2 and n.shape[1] == 4
    assert (n[:, 1] >= 1).all() and (n[:, 0] >= 0).all()
    assert ((n[:, 2] >= cfg.pitch_lo) & (n[:, 2] <= cfg.pitch_hi)).all()
    assert ((n[:, 3] >= 1) & (n[:, 3] <= 127)).all()
    assert (np.lexsort((n[:, 2], n[:, 0])) == np.arange(len(n))).all()
    for p in np.unique(n[:, 2]):
        k = n[n[:, 2] == p]
        assert (k[:-1, 0] + k[:-1, 1] <= k[1:, 0]).all(), f"key {p} sounds twice at once"


def maia(*args, models_dir: Path) -> subprocess.CompletedProcess:
    """``python -m maia ARGS`` with MAIA_MODELS_DIR=``models_dir``, run in this process (maia.__main__.main):
    its exit status and what it printed, as a subprocess would give them. An exception main() lets escape
    (a traceback a user would see) fails the test. ``maia_subprocess`` is the real process, for the smoke test."""
    from maia.__main__ import main

    stdout, stderr = io.StringIO(), io.StringIO()
    before = os.environ.get("MAIA_MODELS_DIR")
    os.environ["MAIA_MODELS_DIR"] = str(models_dir)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse's usage errors (2)
                code = e.code if isinstance(e.code, int) else 1
    finally:
        if before is None:
            os.environ.pop("MAIA_MODELS_DIR", None)
        else:
            os.environ["MAIA_MODELS_DIR"] = before
    return subprocess.CompletedProcess(["maia", *args], code, stdout.getvalue(), stderr.getvalue())


def maia_subprocess(*args, models_dir: Path, timeout=180) -> subprocess.CompletedProcess:
    """``python -m maia ARGS`` in a real subprocess (the entry point, the exit status, no traceback)."""
    env = {**os.environ, "MAIA_MODELS_DIR": str(models_dir), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "maia", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


TINY = {  # random-init models, small enough that a test composes hundreds of tokens in a blink
    "gpt": dict(block_size=32, n_layer=2, n_head=2, n_embd=32, d_ff=64),
    "lstm": dict(emb_dim=4, hidden=32, n_layer=2, block_size=32),
}


def tiny_model(kind: str, vocab, seed: int = 0, **overrides):
    """A random-init ``kind`` model ("gpt" or "lstm") of TINY's size with ``overrides``, for ``vocab`` (a Vocab
    or its size), its weights drawn after torch.manual_seed(``seed``), in eval mode: the one tiny model the
    tests compose with, save and load (tests/test_models.py tests build_model itself)."""
    import torch

    from maia.models import build_model

    torch.manual_seed(seed)
    size = vocab if isinstance(vocab, int) else len(vocab)
    return build_model(kind, {**TINY[kind], "vocab_size": size, **overrides}).eval()


def as_dense_as_piano(model, vocab, scale: float = 0.6):
    """``model`` (a tiny_model for ``vocab``, a Vocab) changed in place to write music nearly as dense as the piano
    model's: its output rows for the waits longer than half a quarter are scaled by ``scale``, so those waits
    are seldom among the likeliest tokens. A random-init model otherwise waits as often and as long as it plays:
    1,000 of its tokens span about 150 s of music in near-empty bars (the piano model's about 20 s), and
    finishing such a piece (the WAV, and the sheet music, whose cost music21 makes grow with bars x notes)
    dominated the tests that stop or finish long compositions. At 0.6: 30-50 s and about 330 notes per 1,000
    tokens (at 0.5, 14-22 s: two bars with an ending then take more than the page's 512 tokens). Returns the
    model."""
    import torch

    head = next(m for m in reversed(list(model.modules())) if isinstance(m, torch.nn.Linear))
    assert head.out_features == len(vocab), "the last linear layer is the output head"
    half_quarter = vocab.config.steps_per_quarter // 2
    long_waits = [i for i, t in enumerate(vocab.itos) if t.startswith("wait") and int(t[4:]) > half_quarter]
    with torch.no_grad():
        head.weight[long_waits] *= scale  # the gpt's head is tied to its embedding: those waits' embedding too
    return model


def random_piece(seed: int, n: int = 120) -> Piece:
    rng = np.random.default_rng(seed)
    onset = np.sort(rng.integers(0, 12 * n // 2, n))
    dur = rng.integers(1, 30, n)
    pitch = rng.integers(40, 90, n)
    vel = rng.integers(20, 120, n)
    return Piece(normalize_notes(onset, onset + dur, pitch, vel, CFG), 12, 90.0, (3, 4))


def biased_model(model, ids, amount):
    """``model`` whose every next-token logit for ``ids`` is raised by ``amount`` (a model with a habit), with
    the same interface (forward, init_cache, step)."""
    import torch

    class Biased(torch.nn.Module):
        """A model whose every next-token logit for ``ids`` is raised by ``amount``: the same interface."""

        def __init__(self, model, ids, amount):
            super().__init__()
            self.model, self.config, self.max_context = model, model.config, model.max_context
            bias = torch.zeros(model.config.vocab_size, dtype=torch.float64)
            bias[ids] = amount
            self.register_buffer("bias", bias)

        def forward(self, idx):
            return self.model(idx) + self.bias

        def init_cache(self, batch_size):
            return self.model.init_cache(batch_size)

        def step(self, idx, cache):
            return self.model.step(idx, cache) + self.bias

    return Biased(model, ids, amount)


# ---- the page in Debian's chromium (Playwright; no browser is ever downloaded) ------------------------------
CHROMIUM = Path(webmidi.CHROMIUM)
CHROMIUM_ARGS = webmidi.CHROMIUM_ARGS  # no first-run, no background networking, audio without a click


STATS = "window.maiaLive && window.maiaLive['1']"  # variation 1's live roll (maia/web/): counters and probes


# An init script: counts the animation frames that Gradio's status trackers ask for (window.maiaStatusFrames), for a
# test that an idle page asks for none. Before the page's modules load, which keep the function they find.
COUNT_STATUS_FRAMES = """
window.maiaStatusFrames = 0;
const maiaFrame = window.requestAnimationFrame;
window.requestAnimationFrame = (callback) => {
  if ((new Error().stack || "").includes("/statustracker-")) window.maiaStatusFrames += 1;
  return maiaFrame.call(window, callback);
};
"""
STATUS_FRAMES = "window.maiaStatusFrames"


POLL_MS = 100  # how often until() asks the page


def until(page, expression: str, timeout: float = 30_000):
    """``page.wait_for_function(expression)``, asked every POLL_MS: Playwright's default asks at every animation frame,
    which keeps headless chromium drawing frames for as long as a test waits (and, for a roll's notePixels, reads the
    whole canvas back 60 times a second), about a core of software rendering."""
    return page.wait_for_function(expression, timeout=timeout, polling=POLL_MS)


def choose(page, elem_id: str, option: str):
    """Picks ``option`` in the page's dropdown ``#elem_id``."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


@contextlib.contextmanager
def served_app(models_dir, tmp_path_factory, extra_env: dict | None = None):
    """app.py on a free port of 127.0.0.1 serving ``models_dir``: (its URL, its PID), and stopped by PID
    afterwards; the test fails with the app's log if it never serves."""
    import pytest

    from bench.appserver import serve

    log = tmp_path_factory.mktemp("app") / "app.log"
    try:
        with serve(models_dir, log, timeout=300, extra_env=extra_env) as (url, pid):  # a loaded machine is slow to start it
            yield url, pid
    except RuntimeError as e:  # app.py exited or never served
        pytest.fail(f"{e}:\n{log.read_text()[-2000:]}")


VIEWPORT = {"width": 1400, "height": 1000}  # the browser tests' window: the page's columns side by side
_TABS: dict = {}  # a browser context's (conftest.py's shared_context) tab: (the page, the init script it runs)


def tab(context, script: str | None = None):
    """A page of ``context`` (conftest.py's shared_context) at VIEWPORT, for a test to load the app in: the tab the
    module's last test used, when it runs the same init ``script`` (Playwright cannot take one away), else a new
    one. Loading the app again in a tab costs about 2.0 core-seconds of the machine, in a new tab 3.3 (a renderer
    process of its own; the median of 6 loads each). After the test, conftest.py's _close_pages sends the tab to
    about:blank, which ends the page's session (its music, its timers, Gradio's connection) as closing it would."""
    page, had = _TABS.get(context, (None, None))
    if page is None or page.is_closed() or had != script:
        if page is not None and not page.is_closed():
            page.close()
        page = context.new_page()
        if script:
            page.add_init_script(script)
        _TABS[context] = (page, script)
    page.set_viewport_size(VIEWPORT)
    return page


def leave_tab(context) -> None:
    """After a test: the context's tab (``tab``) goes to about:blank, ready for the next test's load; a tab that
    cannot go there (its renderer gone) is closed, and the next test gets a new one."""
    page = _TABS.get(context, (None, None))[0]
    if page is None or page.is_closed():
        _TABS.pop(context, None)
        return
    try:
        page.goto("about:blank")
    except Exception:  # a crashed or wedged page: a new tab next time
        page.close()
        _TABS.pop(context, None)


def is_tab(page) -> bool:
    return any(page is p for p, _ in _TABS.values())


@contextlib.contextmanager
def chromium():
    """Debian's chromium launched through Playwright, closed afterwards; skips the test without it."""
    import pytest

    if not CHROMIUM.exists():
        pytest.skip(webmidi.MISSING)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
