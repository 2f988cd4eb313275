"""The gallery under concurrent writers and under SIGKILL: every save and vote there once; a killed save leaves
no partial piece, and the next start leaves no orphan file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from maia.gallery.store import DB_NAME, Gallery


@pytest.mark.slow
def test_16_concurrent_writers_lose_nothing_and_double_nothing(tmp_path):
    from bench.gallery_load import run

    result = run(tmp_path, users=16, seconds=3.0)
    failed = [f for r in result["reports"] for f in r["failed"]]
    assert failed == []
    assert len(result["expected_pieces"]) > 16 and result["pieces"] == result["expected_pieces"]
    assert len(result["expected_votes"]) > 0 and result["votes"] == result["expected_votes"]
    assert result["integrity"] == "ok" and result["missing_files"] == [] and result["swept"] == 0


CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from maia.gallery import blobs
    from maia.gallery.store import Gallery, Quotas

    folder, where = sys.argv[1], sys.argv[2]
    ready = Path(folder) / "ready"
    g = Gallery(folder, Quotas(saves_per_minute=10**6, max_pieces_per_owner=10**6))
    real_replace, real_put = os.replace, blobs.Blobs.put

    def pause():
        ready.touch()
        time.sleep(60)  # killed here

    if where == "before_rename":  # a file half-way: written to its temp name, not yet renamed
        def replace(src, dst):
            if str(src).endswith(".part") and "wav" in str(dst):
                pause()
            return real_replace(src, dst)
        blobs.os.replace = replace
    elif where == "before_commit":  # every file stored, the rows not yet committed
        def put(self, data, kind):
            digest = real_put(self, data, kind)
            if kind == "roll":
                if (Path(folder) / "go").exists():
                    return digest
                ready.touch()  # killed here, or let go on by the in-flight test
                while not (Path(folder) / "go").exists():
                    time.sleep(0.05)
            return digest
        blobs.Blobs.put = put
    g.save("done before", "t" * 32, {"midi": b"MThd first"}, composer="c", model="m")
    n = 0
    while True:
        n += 1
        g.save(f"piece {n}", "t" * 32, {"midi": b"MThd" + os.urandom(64), "wav": os.urandom(200_000),
                                       "roll": os.urandom(1000)}, composer="c", model="m")
        if where != "random" and n == 1:
            ready.touch()
        if where == "random" and n == 3:
            ready.touch()
""")


def _start(tmp_path, where):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    folder = tmp_path / "g"
    folder.mkdir()
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, str(script), str(folder), where], cwd=root,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root})
    deadline = time.time() + 60
    while not (folder / "ready").exists():
        assert proc.poll() is None and time.time() < deadline, "the child did not get to the save"
        time.sleep(0.02)
    return proc, folder


def _check_clean(folder):
    g = Gallery(folder)  # the next start: the sweep runs here
    with sqlite3.connect(folder / DB_NAME) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT hash, kind FROM files").fetchall()
        pieces = conn.execute("SELECT count(*) FROM pieces").fetchone()[0]
        no_files = conn.execute("SELECT count(*) FROM pieces p WHERE NOT EXISTS "
                                "(SELECT 1 FROM files f WHERE f.piece = p.id)").fetchone()[0]
    referenced = {g.blobs.name(h, k) for h, k in rows}
    on_disk = {p.name for p in g.blobs.stored()}
    assert on_disk == referenced  # no orphan file, no missing file
    assert list(g.blobs.tmp.iterdir()) == []  # no temp file left
    assert no_files == 0
    for p in g.list(page=0)[0]:
        assert all(f.is_file() for f in p.files.values())
    return pieces


@pytest.mark.slow
@pytest.mark.parametrize("where", ["before_rename", "before_commit", "random"])
def test_sigkill_mid_save_leaves_no_partial_piece_and_no_orphan(tmp_path, where):
    proc, folder = _start(tmp_path, where)
    if where == "random":
        time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    files_before = list((folder / "files").glob("*/*")) + list((folder / "files" / "tmp").iterdir())
    pieces = _check_clean(folder)
    assert pieces >= 1
    if where != "random":
        assert files_before, "the kill should have left a file behind for the sweep"
        assert pieces == 1 + (where == "random")  # only the save that finished before the kill


@pytest.mark.slow
def test_the_sweep_waits_for_a_save_in_flight_in_another_process(tmp_path):
    proc, folder = _start(tmp_path, "before_commit")  # its files are written, its rows not committed
    opened = []
    t = threading.Thread(target=lambda: opened.append(Gallery(folder)))  # a second server starting
    t.start()
    time.sleep(1.0)
    assert not opened, "the sweep must wait for the save in flight"
    (folder / "go").touch()  # the child commits, then goes on saving; the sweep runs between saves
    t.join(timeout=30)
    assert opened
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    g = opened[0]
    pieces, _ = g.list()
    saved = [p for p in pieces if p.title == "piece 1"]
    assert saved and all(f.is_file() for f in saved[0].files.values())  # its files survived the sweep
    _check_clean(folder)
