"""maia/memory.py: on glibc, freed memory goes back to the system when asked (the server asks after each
request), and the arena limit is accepted."""

from __future__ import annotations

import ctypes
import platform

import pytest

from maia import memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim and mallopt are glibc's")


def rss_pages() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1])


@glibc
def test_trim_gives_freed_heap_back():
    """Small blocks freed below a live one stay in the heap (glibc trims only a free top by itself);
    trim releases their pages."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(4000) for _ in range(50_000)]  # ~200 MB below the mmap threshold: in the heap
    for b in blocks:
        ctypes.memset(b, 1, 4000)
    keep = libc.malloc(4000)  # holds the top of the heap
    for b in blocks:
        libc.free(b)
    before = rss_pages()
    assert memory.trim()
    released = before - rss_pages()
    libc.free(keep)
    assert released * 4096 > 100 * 2**20  # most of the 200 MB went back


@glibc
def test_limit_arenas_is_accepted():
    assert memory.limit_arenas(2)


def test_off_glibc_both_are_quiet_no_ops(monkeypatch):
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.trim() is False and memory.limit_arenas(2) is False
