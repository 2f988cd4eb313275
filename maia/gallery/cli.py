"""``python -m maia gallery ...``: the operator's commands for the gallery in MAIA_DATA_DIR.

Usage:
    python -m maia gallery seed [--tokens 256]     compose maia's works (the shipped models, fixed seeds); idempotent
    python -m maia gallery list [--all]            the pieces, newest first (--all: hidden ones too)
    python -m maia gallery ratings [--json]        the listening room's leaderboard (Bradley–Terry, 95% intervals)
    python -m maia gallery export FILE             the whole gallery (pieces, files, votes) as one zip
    python -m maia gallery import FILE             add an export's pieces and votes (what is there is kept)
    python -m maia gallery hide ID [--show]        hide a piece from the gallery and the listening room (or show it)

A database that cannot be used (corrupt, or written by a newer maia) ends in one line and exit status 1.
"""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    """Adds ``gallery`` and its commands to maia's subparsers (maia/__main__.py)."""
    p = sub.add_parser("gallery", help="maia's works and the listening room: seed, list, ratings, export, import, hide")
    g = p.add_subparsers(dest="gallery_command", required=True)
    s = g.add_parser("seed", help="compose maia's works with the shipped models (skips those already there)")
    s.add_argument("--tokens", type=int, default=256, help="new tokens per work (256: about 10 s of music)")
    s = g.add_parser("list", help="the pieces, newest first")
    s.add_argument("--all", action="store_true", help="hidden pieces too")
    s = g.add_parser("ratings", help="the leaderboard of models and settings")
    s.add_argument("--json", action="store_true", help="one JSON object: the leaderboard and the vote count")
    s = g.add_parser("export", help="write the whole gallery to a zip file")
    s.add_argument("file")
    s = g.add_parser("import", help="add the pieces and votes of an export")
    s.add_argument("file")
    s = g.add_parser("hide", help="hide a piece (the operator's call)")
    s.add_argument("id")
    s.add_argument("--show", action="store_true", help="show a hidden piece again")
    p.set_defaults(func=run)


def run(a) -> int:
    from maia.gallery.store import Gallery

    gallery = Gallery.open(a.limits)  # GalleryError: the one line, from maia's main
    return COMMANDS[a.gallery_command](a, gallery)


def _seed(a, gallery) -> int:
    from maia.gallery.shelf import seed

    added = seed(gallery, a.limits, tokens=a.tokens, progress=lambda line: print(line, file=sys.stderr))
    print(f"maia's works: {len(added)} composed, {gallery.counts()['pieces']} pieces in {gallery.folder}", file=sys.stderr)
    return 0


def _list(a, gallery) -> int:
    page, pieces = 0, []
    while True:
        found, total = gallery.list(page=page, include_hidden=a.all)
        pieces += found
        if len(pieces) >= total or not found:
            break
        page += 1
    for p in pieces:
        flags = ("shelf " if p.shelf else "") + ("hidden" if p.hidden else "")
        print(f"{p.uid}  {p.model:<7} {p.composer:<10} {p.key:<10} {p.seconds:6.1f} s  {flags:<12} {p.title}")
    print(f"{len(pieces)} pieces", file=sys.stderr)
    return 0


def _ratings(a, gallery) -> int:
    from maia.gallery.ratings import leaderboard

    games = gallery.games()
    board = leaderboard(games)
    if a.json:
        print(json.dumps({"votes": len(games), "method": "Bradley-Terry, ties as half wins, 95% Fisher intervals, "
                          "Elo scale centred on the mean", "ratings": [r.as_dict() for r in board]}))
        return 0
    print(f"{'rating':>7} {'95% interval':>17} {'votes':>6} {'score':>6}  variant")
    for r in board:
        print(f"{r.rating:>7.0f} {f'[{r.low:.0f}, {r.high:.0f}]':>17} {r.games:>6} {r.score:>6.2f}  {r.variant}")
    print(f"{len(games)} votes", file=sys.stderr)
    return 0


def _export(a, gallery) -> int:
    from maia.gallery.transfer import export

    n = export(gallery, a.file)
    print(f"wrote {a.file}: {n['pieces']} pieces, {n['files']} files, {n['votes']} votes", file=sys.stderr)
    return 0


def _import(a, gallery) -> int:
    from maia.gallery.transfer import import_

    n = import_(gallery, a.file)
    print(f"imported {a.file}: {n['pieces']} pieces and {n['votes']} votes added", file=sys.stderr)
    return 0


def _hide(a, gallery) -> int:
    gallery.hide(a.id, hidden=not a.show)
    print(f"piece {a.id} {'shown' if a.show else 'hidden'}", file=sys.stderr)
    return 0


COMMANDS = {"seed": _seed, "list": _list, "ratings": _ratings, "export": _export, "import": _import, "hide": _hide}
