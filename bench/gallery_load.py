"""Many browsers saving and voting at once on one gallery: every save and vote must be there once afterwards.

Usage:
    python -m bench.gallery_load [--users 16] [--seconds 60] [--folder DIR]

Each user is a process of its own with its own token (as separate server processes, or the CLI beside a
server, would be). Until the time is up it saves a piece (a few KB of files, some shared with other users'
pieces) and then votes on the next pair the listening room offers it. Afterwards the database must hold
exactly the pieces and votes the users were told had been saved; a fresh start's sweep finds no orphan
file; SQLite's integrity check passes. Prints the counts, throughput and latencies.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from maia.errors import InputError

QUOTAS = dict(max_pieces_per_owner=1_000_000, saves_per_minute=1_000_000, votes_per_minute=1_000_000)


def _user(folder: str, i: int, deadline, start, out) -> None:
    from maia.gallery.store import Gallery, Quotas

    g = Gallery(folder, Quotas(**QUOTAS))
    token = f"user{i:02d}" + "x" * 16
    saved, voted, refused, failed, save_s, vote_s = [], [], 0, [], [], []
    start.wait()
    n = 0
    while time.time() < deadline.value:
        n += 1
        files = {"midi": f"MThd {i} {n}".encode() * 200, "wav": os.urandom(4096),
                 "roll": f"roll {n % 5}".encode()}  # the roll's content is shared between users: stored once
        t = time.perf_counter()
        try:
            uid = g.save(f"user {i} piece {n}", token, files, composer="mozart", model=f"m{i % 4}",
                         prompt=f"prompt {n % 3}", variant=f"variant {i % 4}")
            save_s.append(time.perf_counter() - t)
            saved.append(uid)
        except Exception as e:
            failed.append(f"save: {type(e).__name__}: {e}")
        pair = g.next_pair(token)
        if pair is not None:
            t = time.perf_counter()
            try:
                g.vote(pair[0].uid, pair[1].uid, ("a", "b", "same")[n % 3], token)
                vote_s.append(time.perf_counter() - t)
                voted.append(tuple(sorted((pair[0].uid, pair[1].uid))))
            except InputError:
                refused += 1
            except Exception as e:
                failed.append(f"vote: {type(e).__name__}: {e}")
    out.put({"user": i, "saved": saved, "voted": voted, "refused": refused, "failed": failed, "save_s": save_s,
             "vote_s": vote_s, "voter": token})


def run(folder: str | Path, users: int = 16, seconds: float = 60.0) -> dict:
    """Runs the load; returns the users' reports and what the database holds afterwards."""
    from maia.gallery.store import Gallery, owner_digest

    folder = str(folder)
    Gallery(folder)  # create and migrate once, before the users race
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    deadline = ctx.Value("d", 0.0)  # set once every process has started: their start is not counted
    procs = [ctx.Process(target=_user, args=(folder, i, deadline, start, out)) for i in range(users)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    deadline.value = time.time() + seconds
    start.set()
    reports = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    g = Gallery(folder)  # the next start: migrations, then the sweep
    swept = g.sweep()
    with sqlite3.connect(Path(folder) / "gallery.sqlite3") as conn:
        titles = [r[0] for r in conn.execute("SELECT uid FROM pieces")]
        votes = [(r[0], r[1], r[2]) for r in conn.execute("SELECT a, b, voter FROM votes")]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        missing_files = [r[0] for r in conn.execute("SELECT hash FROM files")
                         if not any((Path(folder) / "files" / r[0][:2]).glob(f"{r[0]}.*"))]
    expected_votes = sorted((a, b, owner_digest(r["voter"])) for r in reports for a, b in r["voted"])
    return {"reports": reports, "pieces": sorted(titles), "expected_pieces": sorted(u for r in reports for u in r["saved"]),
            "votes": sorted(votes), "expected_votes": expected_votes, "integrity": integrity, "swept": swept,
            "missing_files": missing_files, "seconds": seconds, "users": users}


def summary(result: dict) -> list[str]:
    import numpy as np

    reports = result["reports"]
    save_s = np.array([x for r in reports for x in r["save_s"]]) * 1000
    vote_s = np.array([x for r in reports for x in r["vote_s"]]) * 1000
    failed = [f for r in reports for f in r["failed"]]
    secs = result["seconds"]

    def lat(a):
        return f"p50 {np.percentile(a, 50):.1f} ms, p95 {np.percentile(a, 95):.1f} ms, max {a.max():.1f} ms" if len(a) else "-"

    ok_pieces = result["pieces"] == result["expected_pieces"]
    ok_votes = result["votes"] == result["expected_votes"]
    return [
        f"# gallery load: {result['users']} processes, {secs:.0f} s, {os.cpu_count()} CPU cores",
        f"saves: {len(save_s)} ({len(save_s) / secs:.1f}/s), {lat(save_s)}",
        f"votes: {len(vote_s)} ({len(vote_s) / secs:.1f}/s), {lat(vote_s)}; refused {sum(r['refused'] for r in reports)}"
        " (InputError: e.g. a piece hidden or a pair voted between the offer and the vote)",
        f"failed: {len(failed)}" + (f" (first: {failed[0]})" if failed else ""),
        f"database: {len(result['pieces'])} pieces, {len(result['votes'])} votes; integrity {result['integrity']}",
        f"{'PASS' if ok_pieces else 'FAIL'}: every save there exactly once ({len(result['expected_pieces'])} told saved)",
        f"{'PASS' if ok_votes else 'FAIL'}: every vote there exactly once ({len(result['expected_votes'])} told recorded)",
        f"{'PASS' if not result['missing_files'] else 'FAIL'}: every piece's files on disk; "
        f"the next start swept {result['swept']} orphan files",
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--folder", help="the gallery folder (default: a new temp folder)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="maia-gallery-load-") as tmp:
        result = run(a.folder or tmp, a.users, a.seconds)
        lines = summary(result)
    print("\n".join(lines))
    return 0 if all(not line.startswith("FAIL") for line in lines) and "failed: 0" in lines[3] else 1


if __name__ == "__main__":
    raise SystemExit(main())
