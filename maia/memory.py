"""Giving freed memory back to the system in a long-running server (glibc's malloc; elsewhere a no-op).

Gradio runs each step of a streamed request on whichever of its worker threads is free, and glibc gives
each thread that allocates its own malloc arena (up to 8 per core). Memory freed when a request ends
stays in those arenas, fragmented, so the server's resident memory grows with every new thread that has
served a step. ``python -m bench.memory`` (48 requests of the piano model from 4 threads, after a warm-up):
+44% resident memory as it is, +8.4% with ``trim`` after each request, +5.8% with ``limit_arenas(2)`` too
(BENCHMARKS.md, docs/reliability.md). ``Serving.start`` (maia/serving.py) calls ``limit_arenas``; each request calls ``trim`` at its end.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


@functools.cache
def _libc():
    """glibc, or None (musl, macOS, Windows: nothing to do there)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018  (glibc only)
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas for the threads created from now on; True when glibc took it."""
    libc = _libc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, int(n)))


def trim() -> bool:
    """Returns the free memory at the top of every arena to the system; True when some was released."""
    libc = _libc()
    return bool(libc and libc.malloc_trim(0))


__all__ = ["limit_arenas", "trim"]
