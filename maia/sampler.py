"""Sampling in processes of their own, for the server: the same maia.generate, off the server's GIL.

    pool = SamplerPool(2, device="cpu", threads=1)      # once, when the server starts
    pool.preload(folder)                                 # each process loads the model before the first click
    steps = pool.generate(folder, prompt_ids, config, controls=controls)   # like maia.generate(...), fill_steps too
    steps = pool.infill(folder, prefix_ids, suffix_ids, n_steps, config)  # like maia.generate.infill(...)
    for step in steps: ...                               # one list of token ids (or None) per step
    steps.close()                                        # the process stops sampling and is free again
    pool.close()

Why: in the server, the sampling loop shares one interpreter with Gradio's event loop, the audio worker and
the updates. Each sampling step runs a few hundred torch ops, and each op lets go of the GIL and takes it
back; whenever another thread holds it, the step waits (up to the 5 ms switch interval). The streamed
request sampled at 78-95 tokens/s where bare maia.generate did 88-116 (BENCHMARKS.md). In a process of its
own the loop has an interpreter to itself, and each step's few token ids come back through a socket.

Each process is ``python -m maia.sampler FD DEVICE THREADS``, started with subprocess rather than
multiprocessing, so that it never imports the server's ``__main__`` (app.py and Gradio). It keeps the models
it loaded (by folder and weights file time, at most MAX_MODELS) and serves one job at a time:

    server -> process:  ("load" | "generate" | "infill", folder, mtime, args) | "stop" | None (exit)
    process -> server:  ("step", [ids]) ... then ("end", None) | ("error", exception)

A process that dies (killed, out of memory) fails only the request it was serving, with a ServerError, and
a fresh one takes its place.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection

from maia.errors import MaiaError, ServerError

MAX_MODELS = 4  # models each process keeps loaded, as a Serving keeps (maia/serving.py)


class Steps:
    """The steps of one job in a sampler process, as an iterator: what maia.generate yields. ``close``
    (or the end of the steps, or an error) gives the process back to its pool."""

    def __init__(self, pool: SamplerPool, worker: _Worker):
        self.pool, self.worker, self.done = pool, worker, False

    def __iter__(self):
        return self

    def __next__(self) -> list[int | None]:
        if self.done:
            raise StopIteration
        kind, value = self._recv()
        if kind == "step":
            return value
        self._release()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stops the sampling; the steps already sent are dropped. Safe to call twice."""
        if self.done:
            return
        try:
            self.worker.conn.send("stop")
        except OSError:  # the process is gone
            self.done = True
            self.pool._replace(self.worker)
            return
        try:
            while self._recv()[0] == "step":
                pass
        except ServerError:  # it died meanwhile, and was replaced
            return
        self._release()

    def _recv(self):
        try:
            return self.worker.conn.recv()
        except (EOFError, OSError):
            code = self.worker.proc.poll()
            self.done = True
            self.pool._replace(self.worker)
            raise ServerError(f"the sampling process stopped (exit status {code}); try again") from None

    def _release(self) -> None:
        self.done = True
        self.pool._idle.put(self.worker)

    def __del__(self):  # a stream dropped without close: free the process
        if not self.done:
            self.close()


class _Worker:
    def __init__(self, device: str, threads: int):
        ours, theirs = socket.socketpair()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where maia/ is: -m finds it there
        self.proc = subprocess.Popen([sys.executable, "-m", "maia.sampler", str(theirs.fileno()), device, str(threads)],
                                     pass_fds=[theirs.fileno()], cwd=root, stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.conn.close()


class SamplerPool:
    """``size`` sampler processes on ``device``, each with ``threads`` torch threads. A job waits for a
    free process (the server's queue admits at most ``size`` requests at once, so it never waits long)."""

    def __init__(self, size: int, device: str = "cpu", threads: int = 1):
        self.device, self.threads = device, threads
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(size):
            self._add()

    def _add(self) -> None:
        w = _Worker(self.device, self.threads)
        with self._lock:
            self._all.append(w)
        self._idle.put(w)

    def _replace(self, dead: _Worker) -> None:
        with self._lock:
            if dead in self._all:
                self._all.remove(dead)
        dead.conn.close()
        if dead.proc.poll() is None:  # the connection broke but the process lives on: end it
            dead.proc.kill()
        dead.proc.wait()
        if not self._closed:  # (a stream dropped while the server shuts down starts nothing)
            self._add()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._all]

    def _start(self, kind: str, folder: str, mtime: float, args: tuple) -> Steps:
        if self._closed:
            raise ServerError("the server is shutting down")
        worker = self._idle.get()
        steps = Steps(self, worker)
        try:
            worker.conn.send((kind, os.path.abspath(folder), mtime, args))  # (the process runs in maia's folder)
        except OSError:
            steps.done = True
            self._replace(worker)
            raise ServerError("the sampling process stopped; try again") from None
        return steps

    def preload(self, folder, mtime: float = 0.0) -> None:
        """Every process loads the model in ``folder`` now (waits for them)."""
        jobs = [self._start("load", folder, mtime, ()) for _ in range(len(self.pids))]
        for steps in jobs:
            for _ in steps:
                pass

    def generate(self, folder, prompt_ids: Sequence[int], config, controls=None, mtime: float = 0.0,
                 fill_steps: int | None = None) -> Steps:
        """maia.generate.generate(model in ``folder``, prompt_ids, config, vocab, fill_steps=fill_steps,
        controls=controls)."""
        fill = None if fill_steps is None else int(fill_steps)
        return self._start("generate", folder, mtime, (list(map(int, prompt_ids)), config, controls, fill))

    def infill(self, folder, prefix_ids: Sequence[int], suffix_ids: Sequence[int], steps: int, config,
               mtime: float = 0.0) -> Steps:
        """maia.generate.infill(model in ``folder``, prefix_ids, suffix_ids, steps, config, vocab)."""
        return self._start("infill", folder, mtime,
                           (list(map(int, prefix_ids)), list(map(int, suffix_ids)), int(steps), config))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for w in workers:
            w.stop()


# ---- the sampler process ---------------------------------------------------------------------------------


def _serve(conn: Connection, device: str) -> None:
    """Runs jobs until the server says None or goes away."""
    from maia.checkpoint import load_model
    from maia.generate import generate, infill

    models: dict[tuple[str, float], tuple] = {}
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        if job == "stop":  # the job it meant to stop had already ended
            continue
        kind, folder, mtime, args = job
        try:
            if (folder, mtime) not in models:
                if len(models) >= MAX_MODELS:
                    models.pop(next(iter(models)))
                models[folder, mtime] = load_model(folder, device=device)[:2]
            model, vocab = models[folder, mtime]
            if kind == "generate":
                prompt_ids, config, controls, fill_steps = args
                steps = generate(model, prompt_ids, config, vocab, fill_steps=fill_steps, controls=controls)
            elif kind == "infill":
                prefix_ids, suffix_ids, n_steps, config = args
                steps = infill(model, prefix_ids, suffix_ids, n_steps, config, vocab)
            else:
                steps = iter(())
            for step in steps:
                conn.send(("step", step))
                if conn.poll() and conn.recv() == "stop":
                    break
                # (anything else mid-job would be a protocol error; the server sends only "stop")
            conn.send(("end", None))
        except MaiaError as e:
            conn.send(("error", e))
        except Exception as e:  # a bug: the request fails with its message, the process serves on
            conn.send(("error", ServerError(f"sampling failed: {type(e).__name__}: {e}")))


def main(argv: list[str]) -> int:
    fd, device, threads = int(argv[0]), argv[1], int(argv[2])
    import torch

    torch.set_num_threads(threads)
    conn = Connection(fd)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server went away mid-job
        _serve(conn, device)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
