"""Files stored by content hash beside the gallery's database: ``files/<h[:2]>/<h>.<ext>``.

A file is written to ``files/tmp/<random>.part``, flushed to disk, then renamed to its hash's name, so a
name under ``files/`` only ever holds its whole content. The rows that refer to it are committed after
(maia/gallery/store.py), so a crash in between leaves an orphan, never a piece without its file; the
next start sweeps orphans.

The sweep must not take the file of a save still in flight in another thread or process for an orphan.
Saves hold a shared ``flock`` on ``files/.lock`` from their first file to their commit, and the sweep
holds it exclusively: a process killed mid-save loses its lock with its life, and then the sweep runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

EXTENSIONS = {"midi": "mid", "wav": "wav", "musicxml": "musicxml", "roll": "png"}
HASH = re.compile(r"[0-9a-f]{64}")


class Blobs:
    """The content-addressed files of one gallery folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.root / ".lock"
        self._lock_path.touch(exist_ok=True)
        self._gate_path = self.root / ".gate"  # the turnstile in front of the lock (see saving)
        self._gate_path.touch(exist_ok=True)

    def path(self, digest: str, kind: str) -> Path:
        """Where the file of this hash and kind lies. ValueError for anything but a sha256 and a known kind:
        no caller can name a path through here."""
        if not HASH.fullmatch(digest) or kind not in EXTENSIONS:
            raise ValueError(f"not a stored file: {digest!r} ({kind!r})")
        return self.root / digest[:2] / f"{digest}.{EXTENSIONS[kind]}"

    def put(self, data: bytes, kind: str) -> str:
        """Stores ``data`` (unless a file of the same content is there) and returns its sha256. The caller
        holds ``saving()``."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest, kind)
        if final.is_file() and final.stat().st_size == len(data):
            os.utime(final)  # a sweep judges by references, not age; this just records the reuse
            return digest
        final.parent.mkdir(exist_ok=True)
        part = self.tmp / f"{secrets.token_hex(8)}.part"
        try:
            with open(part, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, final)  # atomic: the name holds all of the content or does not exist
        finally:
            part.unlink(missing_ok=True)
        return digest

    @contextlib.contextmanager
    def _flock(self, path: Path, mode: int) -> Iterator[bool]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, mode)
                got = True
            except BlockingIOError:
                got = False
            try:
                yield got
            finally:
                if got:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """Held from a save's first file to its commit (shared: saves run side by side). A save passes a
        turnstile first (the gate, held only while it takes the lock), so that a waiting sweep, which holds
        the gate, is not starved by a stream of saves."""
        gate = os.open(self._gate_path, os.O_RDWR | os.O_CREAT, 0o644)
        lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(lock, fcntl.LOCK_SH)
            os.close(gate)  # closing releases the gate
            gate = -1
            yield
        finally:
            if gate >= 0:
                os.close(gate)
            os.close(lock)  # and the lock

    @contextlib.contextmanager
    def sweeping(self, wait: bool = True) -> Iterator[bool]:
        """Held while orphans are removed (exclusive: no save is in flight). Yields False when ``wait`` is
        False and a save holds the lock."""
        nb = 0 if wait else fcntl.LOCK_NB
        with self._flock(self._gate_path, fcntl.LOCK_EX | nb) as gate:
            if not gate:
                yield False
                return
            with self._flock(self._lock_path, fcntl.LOCK_EX | nb) as got:
                yield got

    @staticmethod
    def name(digest: str, kind: str) -> str:
        """A stored file's name: ``<hash>.<ext>``."""
        return f"{digest}.{EXTENSIONS[kind]}"

    def stored(self) -> Iterator[Path]:
        """Every stored file."""
        for sub in self.root.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                yield from (f for f in sub.iterdir() if HASH.fullmatch(f.name.split(".")[0]))

    def remove_unreferenced(self, referenced: set[str], among: set[str] | None = None) -> int:
        """Deletes the stored files whose name (``name(hash, kind)``) is not in ``referenced`` (only those
        named in ``among`` when given; else every leftover ``.part`` too). The caller holds ``sweeping()``.
        Returns the count removed."""
        removed = 0
        if among is None:
            for part in self.tmp.iterdir():
                part.unlink(missing_ok=True)
                removed += 1
            candidates = list(self.stored())
        else:
            candidates = [self.root / n[:2] / n for n in among if HASH.fullmatch(n.split(".")[0])]
        for path in candidates:
            if path.name not in referenced and path.exists():
                path.unlink(missing_ok=True)
                removed += 1
        return removed
