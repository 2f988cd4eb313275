"""Shared test fixtures. Append yours; keep each one tiny and say what it holds."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_OWN_TMP: list[Path] = []


def pytest_configure(config):
    """Each pytest process (each pytest-xdist worker, or the one process of a plain run) gets its own temp
    folder, for itself and the app servers and CLIs it starts (TMPDIR): the library's fixed folders under
    the temp folder (maia-requests, maia-links, maia-gallery-downloads) are never shared by two workers, nor
    by two runs at once, sweeping each other's files. Removed when the run ends. Set here, before any test
    module imports maia."""
    # One torch thread per process, this one's and those it starts (app servers, CLIs), set before torch is
    # imported: the tiny models gain nothing from more, make test runs one worker per core, and a second OpenMP
    # thread spinning against busy cores is 30x slower. A test that wants more threads sets them itself.
    os.environ["OMP_NUM_THREADS"] = "1"
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    folder = Path(tempfile.mkdtemp(prefix=f"maia-tests-{name}-"))
    _OWN_TMP.append(folder)
    os.environ["TMPDIR"] = tempfile.tempdir = str(folder)


def pytest_unconfigure(config):
    for folder in _OWN_TMP:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A prepared corpus folder (tokens.npy, index.json, vocab.json) of 10 Bach chorales from the music21
    corpus: 8 in the training split and 2 in the validation split (chosen by prepare's own path hash)."""
    from maia.vocab import EncodingConfig
    from training.prepare import list_music21, prepare, split_of

    files = list_music21("bach")
    train = [f for f in files if split_of(f.rel) == "train"][:8]
    valid = [f for f in files if split_of(f.rel) == "valid"][:2]
    out = tmp_path_factory.mktemp("tiny_corpus")
    summary = prepare(sorted(train + valid, key=lambda f: f.rel), out, EncodingConfig(), workers=2, quiet=True,
                      dedup_threshold=None)
    assert summary["pieces"] == 10 and not summary["skipped"]
    return out


TINY_COMPOSERS = ("bach", "mozart", "chopin")


def _tiny_models(root: Path, dense: bool) -> Path:
    from helpers import as_dense_as_piano, tiny_model

    from maia.checkpoint import save_model
    from maia.vocab import Vocab

    for name, kind, over in (("gpt", "gpt", {}), ("lstm", "lstm", {}), ("fim", "gpt", {"block_size": 64})):
        vocab = Vocab(composers=TINY_COMPOSERS, fim=name == "fim")  # "fim" can fill in the middle
        model = tiny_model(kind, vocab, **over)
        if dense and kind == "gpt":
            as_dense_as_piano(model, vocab)
        save_model(root / name, model, kind, model.config, vocab, dtype=None)
    return root


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory):
    """A models folder (use it as MAIA_MODELS_DIR) with helpers.tiny_model's random-init "gpt" (block_size 32, so
    the window slides) and "lstm", and "fim", a gpt of window 64 with the fill-in-the-middle tokens, all with the
    composers bach, mozart and chopin; weights kept in float32."""
    return _tiny_models(tmp_path_factory.mktemp("models"), dense=False)


@pytest.fixture(scope="session")
def dense_models_dir(tmp_path_factory):
    """tiny_models_dir's models with the gpts made helpers.as_dense_as_piano: music nearly as dense as the piano
    model's (a random gpt's 1,000 tokens span ~150 s of near-empty bars, these 30-50 s), for app_server (the
    browser and load tests), which composes, stops and finishes long pieces: finishing costs about what it does
    with a real model, not several times more."""
    return _tiny_models(tmp_path_factory.mktemp("dense-models"), dense=True)


@pytest.fixture(scope="session")
def tiny_midi(tmp_path_factory):
    """A 2-bar MIDI file in 3/4 at 90 qpm: a C major arpeggio over a held bass (12 notes)."""
    import numpy as np

    from maia.encoding import Piece

    q = 12  # steps per quarter
    melody = [(i * q // 2, q // 2, p, 80) for i, p in enumerate([60, 64, 67, 72, 67, 64] * 2)][:11]
    notes = np.array([(0, 6 * q, 48, 60), *melody], np.int64)
    notes = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
    path = tmp_path_factory.mktemp("midi") / "arpeggio.mid"
    return Piece(notes, q, 90.0, (3, 4)).write_midi(path)


@pytest.fixture(scope="session")
def performance_midi(tmp_path_factory):
    """A recorded-performance-style MIDI file (tests/midi_factory.py, seed 0): format 1 at 480 tpq, two
    piano parts of ~300 humanised notes each with sustain pedal, a 4-tempo map, 3/4, and a drum track."""
    from midi_factory import performance

    return performance(0).write(tmp_path_factory.mktemp("midi") / "performance.mid")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from more torch threads, and on a small shared machine a second OpenMP
    thread spins against busy cores (30x slower). Use with pytest.mark.usefixtures."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- hypothesis profiles (tests/test_fuzz.py) ---------------------------------------------------------
# "maia" (loaded by default): 200 examples per property, the whole fuzz file in well under a minute on 2 cores.
# "long": pytest --hypothesis-profile=long tests/test_fuzz.py, 5000 examples per property, before a release.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("maia", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", parent=settings.get_profile("maia"), max_examples=5000)
settings.load_profile("maia")  # the hypothesis plugin loads --hypothesis-profile after this, when given


@pytest.fixture(scope="session", autouse=True)
def gallery_data_dir(tmp_path_factory):
    """MAIA_DATA_DIR for the whole run: app.py opens the gallery when imported or served, and a test run
    must never write into the user's own gallery (~/.local/share/maia). Tests that need an empty gallery
    make their own."""
    import os

    folder = tmp_path_factory.mktemp("gallery-data")
    before = os.environ.get("MAIA_DATA_DIR")
    os.environ["MAIA_DATA_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("MAIA_DATA_DIR", None)
    else:
        os.environ["MAIA_DATA_DIR"] = before


# ---- the page in a browser (tests/test_browser.py, test_instrument.py, test_gallery_browser.py) ----------------
@pytest.fixture(scope="session")
def app_server(dense_models_dir, tmp_path_factory):
    """app.py serving dense_models_dir on a free port of 127.0.0.1, with the default limits: (its URL, its PID).
    One server per test process (an app.py starts sampler processes, each importing torch), shared by the
    browser and load tests that need nothing else of it; stopped by PID at the end."""
    from helpers import served_app

    with served_app(dense_models_dir, tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="session")
def app_url(app_server):
    """The URL of app_server."""
    return app_server[0]


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium through Playwright, one per test process (a launch costs about 1.2 s of CPU); each test
    opens its own context (its own storage) with browser.new_context() or browser.new_page(), closed after it.
    Skips the test without chromium."""
    from helpers import chromium

    with chromium() as b:
        yield b


_KEPT: list = []  # first_look's context: the one _close_pages leaves open
_SHARED: list = []  # shared_context's: _close_pages closes its pages, not the context


@pytest.fixture(scope="module")
def first_look(app_url, browser):
    """One page of app_server, opened once per module and test process, for the tests that look at the page as it
    opens (where things are, what they say) and change nothing that the others look at: a page load costs
    chromium 1-2 s of CPU (the headless shell), more than such a test does. One process runs them all, with every
    other test of the app server (pytest_collection_modifyitems, below). Each test sets the viewport it needs. The
    page counts the animation frames that Gradio's status trackers ask for (helpers.COUNT_STATUS_FRAMES)."""
    from helpers import COUNT_STATUS_FRAMES, VIEWPORT

    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(COUNT_STATUS_FRAMES)
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("button", name="Stop", exact=True).wait_for(timeout=60_000)  # drawn after the load event
    _KEPT.append(context)
    yield page
    _KEPT.remove(context)
    context.close()


@pytest.fixture(scope="module")
def shared_context(browser):
    """One browser context for a module's pages (helpers.tab: one tab that each test loads the app in again): they
    share its HTTP and compiled-code caches, so a page loads for about 15% less CPU than in a context of its own
    (3.55 against 4.16 core-seconds of the machine, chromium's and the app server's, the median of 8 loads each).
    The page keeps nothing in the browser's storage but the gallery's token (gr.BrowserState): a test of the
    gallery opens its own context."""
    from helpers import VIEWPORT

    context = browser.new_context(viewport=VIEWPORT)
    _KEPT.append(context)
    _SHARED.append(context)
    yield context
    _SHARED.remove(context)
    _KEPT.remove(context)
    context.close()


@pytest.fixture(autouse=True)
def _close_pages(request):
    """After a test that used the module's browser: close the contexts it opened, so no page of it goes on
    playing and drawing through the next tests (first_look's stays open for the next test that looks), and the pages
    of shared_context's but its tab (helpers.tab), which goes to about:blank."""
    yield
    browser = request.node.funcargs.get("browser")
    if browser is None:
        return
    from helpers import is_tab, leave_tab

    for context in browser.contexts:
        if context not in _KEPT:
            context.close()
        elif context in _SHARED:
            for page in context.pages:
                if not is_tab(page):
                    page.close()
            leave_tab(context)


# ---- the order the tests run in, and how pytest-xdist deals them out ------------------------------------------
# pyproject.toml's addopts hold --dist loadgroup --no-loadscope-reorder: the workers take the tests one or two at a
# time, in the order below, except the modules of ONE_UNIT, which one worker takes whole (each parses music21
# scores in module fixtures that two workers would both parse), and those of IN_PROCESS_APP, which one worker takes
# together, and the tests of the session's app server (app_server: the browser, duet, instrument, metronome and load
# tests), which one worker takes together: one app server and one chromium for the run, not one of each per worker
# (an app.py and its sampler processes cost 12-17 CPU seconds to start and serve). The slow tests go first, the two
# longest of all first of them (most of their time is spent waiting on a server, which the other workers use), so
# that the workers end together instead of one of them finishing a browser test alone; the quick tests fill in at the
# end.
LONGEST = ("test_soak.py", "test_load.py")
ONE_UNIT = ("test_encoding.py", "test_data.py")
# The modules that import app.py in their own process (gradio: 4-5 s of CPU to import, app.py 2.4 s more) go to one
# worker together, and import it only when they run: the other worker never imports gradio.
IN_PROCESS_APP = ("test_app.py", "test_page_defects.py", "test_robustness.py", "test_gallery_page.py")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    def rank(item):
        return 0 if item.path.name in LONGEST else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)  # stable: in file order within each rank
    for item in items:
        if item.path.name in ONE_UNIT:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
        elif item.path.name in IN_PROCESS_APP:
            item.add_marker(pytest.mark.xdist_group("in-process-app"))
        elif "app_server" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("app-server"))
