"""What one server holds, in one object built from its ``Limits``: the models it loaded, the processes it samples
in, its folders, its time budget and its Stop buttons.

    serving = Serving(Limits.from_env())   # app.py, once; tests build their own with the limits they need
    concurrency = serving.start()          # a server: sampler processes (maia/sampler.py), torch threads
    serving.warm_up("piano")               # the first click composes at once
    net, vocab = serving.load("piano")     # an installed model, by name only: a request never names a path
    for update in playground.stream(..., serving=serving): ...

Nothing here is a module global that a request changes: two Serving objects in one process (a test's with a
short time budget, another's with its own models folder) never see each other's limits, models or pool.
Library callers who pass none get ``Serving.default()``: built on first use from ``Limits()`` (the shipped
models, the defaults), never started, so they sample in their own thread.

Models load once per Serving (``load``: keyed by folder, weights file time and device, at most MAX_MODELS).
Every request gets a fresh folder of its own under ``requests_dir`` (``new_request_folder``); folders older than
``limits.keep_files`` are swept as new requests come (Gradio has copied their files into its cache by then).
The uploads that permalinks name are kept under ``uploads_dir`` (maia/permalinks.py).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os  # cpu_count
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from maia import memory
from maia.checkpoint import WEIGHTS, installed_models, load_model, models_root, read_vocab
from maia.errors import InputError, MaiaError, ServerError
from maia.limits import Limits
from maia.sampler import SamplerPool
from maia.vocab import Vocab

MAX_MODELS = 4  # models one Serving keeps loaded (and each of its sampler processes: maia/sampler.py)
REQUESTS_DIR = Path(tempfile.gettempdir()) / "maia-requests"  # the default: one subfolder per request
UPLOADS_DIR = Path(tempfile.gettempdir()) / "maia-links"  # the default: uploads named in links, by content hash


class Serving:
    """One server's state, built from ``limits``: its model cache, its sampler pool (after ``start``), its
    requests and uploads folders and its Stop buttons (``stops``). ``pool``: one already running (a test's), used
    instead of starting one."""

    _default: Serving | None = None
    _default_lock = threading.Lock()

    def __init__(self, limits: Limits | None = None, *, requests_dir: Path | str | None = None,
                 uploads_dir: Path | str | None = None, pool: SamplerPool | None = None):
        self.limits = limits if limits is not None else Limits()
        self.requests_dir = Path(requests_dir) if requests_dir is not None else REQUESTS_DIR
        self.uploads_dir = Path(uploads_dir) if uploads_dir is not None else UPLOADS_DIR
        self.pool = pool
        self.stops = Stops()
        self._active: set[Path] = set()  # the folders of requests still running: never swept
        self._active_lock = threading.Lock()
        self._load = functools.lru_cache(maxsize=MAX_MODELS)(_load_model)  # this Serving's own cache

    @classmethod
    def default(cls) -> Serving:
        """The Serving of library callers who pass none (scripts, notebooks, most tests): ``Limits()``, built on
        first use and shared by them; never started."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    # ---- the process ---------------------------------------------------------------------------------
    def device(self) -> str:
        """The device models run on (``limits.device``: CUDA when available, else the CPU)."""
        return self.limits.torch_device()

    def time_budget(self) -> float:
        """Seconds one request may take, finishing included (``limits.time_budget``, MAIA_TIME_BUDGET)."""
        return self.limits.time_budget

    def start(self) -> int:
        """Process-wide settings, called once when the server starts; returns the queue's concurrency limit
        (``limits.concurrency``, MAIA_CONCURRENCY: default 2 on CPU, 4 on CUDA). On CPU each of the concurrent
        requests gets an equal share of the cores as torch threads: one sampling step is too small to gain from
        more, and more threads than cores make OpenMP spin against itself (30x slower when the machine is busy).
        With ``limits.sampling == "process"`` (the default) requests sample in as many processes of their own
        (maia/sampler.py), off the server's GIL."""
        memory.limit_arenas(2)  # freed memory stays reusable across Gradio's worker threads (maia/memory.py)
        dev = self.device()
        concurrency = self.limits.serving_concurrency(dev)
        threads = max(1, (os.cpu_count() or 1) // concurrency)
        if dev == "cpu":
            torch.set_num_threads(threads)
        if self.limits.sampling == "process" and self.pool is None:
            self.pool = SamplerPool(concurrency, dev, threads)
            atexit.register(self.pool.close)
        return concurrency

    def warm_up(self, model: str | None) -> None:
        """Loads ``model`` (here and in the sampler processes) and the libraries a request needs (matplotlib,
        FluidSynth, music21), so that the first click is as quick as the next ones. Called once when the server
        starts."""
        if model:
            self.load(model)
            if self.pool is not None:
                self.pool.preload(*self._resolve(model))
        import music21  # noqa: F401  (about a second to import)

        from maia import pianoroll, synth  # noqa: F401

    # ---- models ----------------------------------------------------------------------------------------
    def model_choices(self) -> list[str]:
        """The installed models' names, in the order offered (maia.checkpoint.installed_models)."""
        return list(installed_models(self.limits.models_dir))

    def _resolve(self, name: str) -> tuple[str, float]:
        """The installed model called ``name`` -> (its folder, its weights' modification time: a new version of
        the file is a new model). InputError for any other name."""
        models = installed_models(self.limits.models_dir)
        if name not in models:
            raise InputError(f"unknown model {name!r}; installed: {', '.join(models) or 'none'} "
                             f"(in {models_root(self.limits.models_dir)})")
        weights = models[name] / WEIGHTS  # missing: load_model says so, in its words
        return str(models[name]), weights.stat().st_mtime if weights.is_file() else 0.0

    def load(self, name: str):
        """The installed model called ``name`` -> (model, vocab), loaded once and shared by this Serving's
        requests. InputError for any other name."""
        model, vocab, _ = self._load(*self._resolve(name), self.device())
        return model, vocab

    def vocab_of(self, name: str | None) -> Vocab:
        """The vocabulary of an installed model, read from its config.json without loading the weights; the
        default vocabulary for an unknown or broken model (composing with it then says what is wrong)."""
        models = installed_models(self.limits.models_dir)
        if name not in models:
            return Vocab()
        try:
            return read_vocab(models[name])
        except MaiaError:
            return Vocab()

    def steps(self, name: str, comp) -> Iterator[list[int | None]]:
        """maia.generate's per-step tokens for ``comp`` (a maia.compose.Composition of the model called ``name``):
        in a sampler process when started with them, else in this thread (Composition.steps)."""
        if self.pool is None:
            return comp.steps()
        folder, mtime = self._resolve(name)
        if comp.span is not None:
            s = comp.span
            return self.pool.infill(folder, s.prefix_ids, s.suffix_ids, s.steps, comp.sampling, mtime=mtime)
        return self.pool.generate(folder, comp.prompt.ids, comp.sampling, comp.steering or comp.controls, mtime=mtime,
                                  fill_steps=comp.fill_steps)

    # ---- folders ---------------------------------------------------------------------------------------
    def sweep(self, folder: Path) -> None:
        """Removes the entries of ``folder`` last touched more than ``limits.keep_files`` seconds ago, except the
        folders of requests still running (a request may outlast a short ``keep_files`` on a busy machine)."""
        cutoff = time.time() - self.limits.keep_files
        with self._active_lock:
            active = set(self._active)
        for old in folder.iterdir():
            try:
                if old not in active and old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
            except OSError:  # another request removed it first
                pass

    def new_request_folder(self) -> Path:
        """A fresh folder for one request's files. Removes the folders of requests older than an hour, so
        that a server running for weeks does not fill its disk (``limits.keep_files``, MAIA_KEEP_FILES: Gradio
        copies the files into its own cache within seconds). ServerError when the temp folder is unwritable."""
        try:
            self.requests_dir.mkdir(exist_ok=True)
            self.sweep(self.requests_dir)
            folder = Path(tempfile.mkdtemp(prefix="maia-", dir=self.requests_dir))
        except OSError as e:
            raise disk_error(e) from None
        with self._active_lock:
            self._active.add(folder)
        return folder

    def release(self, folder: Path) -> None:
        """``folder``'s request has finished: its files may be swept once they are ``limits.keep_files`` old."""
        with self._active_lock:
            self._active.discard(folder)


def _load_model(folder: str, mtime: float, dev: str):
    """One load per model folder (and version of it) per Serving; the model is shared by all its requests."""
    return load_model(folder, device=dev)


def disk_error(e: OSError) -> ServerError:
    """A disk that refuses a request's files (full, unwritable), in one line for the user."""
    return ServerError(f"the server cannot write this piece's files ({e.strerror or type(e).__name__}); "
                       "please try again later")


class Stops:
    """The page's Stop, per browser session (a Serving holds one): it asks the session's compositions to end
    and finish what they made, where cancelling Gradio's event would drop the stream mid-update (no WAV, no
    sheet, a player left waiting, and an "Error" badge on the roll).

    ``arm(session)`` when a composition is asked for (Compose, before the queue), ``running(session)`` around
    it (the event its ``stream`` watches), ``stop(session)`` from the Stop button: it sets the events of the
    session's running compositions, and one still in the queue finds its stop waiting when it starts."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[str, list[threading.Event]] = {}
        self._waiting: set[str] = set()  # sessions whose Stop came while their composition was queued

    def arm(self, session: str | None) -> None:
        """A new composition was asked for: a Stop meant for an earlier one no longer applies."""
        with self._lock:
            self._waiting.discard(session)

    @contextlib.contextmanager
    def running(self, session: str | None) -> Iterator[threading.Event]:
        """The stop event of one composition of ``session`` (None: one nothing can stop but its own end)."""
        event = threading.Event()
        if session is None:
            yield event
            return
        with self._lock:
            if session in self._waiting:
                self._waiting.discard(session)
                event.set()
            self._running.setdefault(session, []).append(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._running.get(session, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._running.pop(session, None)

    def stop(self, session: str | None) -> bool:
        """Stops ``session``'s running compositions (True), or the one it has queued when it starts (False)."""
        with self._lock:
            events = self._running.get(session)
            for event in events or []:
                event.set()
            if not events and session is not None:
                self._waiting.add(session)
            return bool(events)
