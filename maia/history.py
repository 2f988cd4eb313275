"""The page's undo and redo: the pieces one browser session made, in order, and where it stands among them.

    history = new_history()                                   # per session: app.py keeps it in a gr.State
    history = remember(history, live, files, status)          # after each finished composition
    history, entry = step_history(history, -1)                # undo (+1: redo); None at either end
    update = playground.show(entry)                           # the entry's piece, as if just composed

A history is plain data ({"items": [entry, ...], "at": index}), never global, so undo never crosses users.
An entry is {"midi": path, "mine_s": [from, to] seconds of maia's notes, "status"}; a duet's also has
"turns_s", maia's answers as [[from, to], ...] seconds.
"""

from __future__ import annotations

import json

HISTORY_LENGTH = 50  # pieces one session's undo can go back through


def new_history() -> dict:
    """An empty history."""
    return {"items": [], "at": -1}


def remember(history: dict | None, live: str, files, status: str) -> dict:
    """The history with variation 1's finished piece added after the current entry (a new piece after
    an undo drops the undone ones, as editors do); unchanged when nothing finished."""
    history = history or new_history()
    try:
        message = json.loads(live) if live else None
    except ValueError:
        message = None
    midi = next((str(f) for f in files or [] if str(f).endswith(".mid")), None)
    if not message or not message.get("done") or midi is None:
        return history
    entry = {"midi": midi, "mine_s": message["mine"], "status": status}
    if message.get("turns"):  # a duet: maia's answers between your phrases
        entry["turns_s"] = message["turns"]
    items = [*history["items"][:history["at"] + 1], entry]
    items = items[-HISTORY_LENGTH:]
    return {"items": items, "at": len(items) - 1}


def step_history(history: dict | None, delta: int) -> tuple[dict, dict | None]:
    """Undo (delta -1) or redo (+1): the moved history and the entry to show (None at either end)."""
    history = history or new_history()
    at = history["at"] + delta
    if not 0 <= at < len(history["items"]):
        return history, None
    return {**history, "at": at}, history["items"][at]
