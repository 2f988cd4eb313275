"""The browser code maia ships (no CDN, nothing fetched at run time): the live piano roll and player, and the
instrument (a keyboard on screen, the computer's keys and Web MIDI in and out).

``roll_js()`` is the ``js_on_load`` of the page's gr.HTML roll, ``keys_js()`` the instrument's; each with its
stylesheet inlined."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROLL_TEMPLATE = '<div class="maia-live" data-slot="${slot}"></div>'
KEYS_TEMPLATE = '<div class="maia-keys"></div>'


def _with_css(name: str, const: str) -> str:
    css = (HERE / f"{name}.css").read_text(encoding="utf-8")
    return f"const {const} = {json.dumps(css)};\n" + (HERE / f"{name}.js").read_text(encoding="utf-8")


def roll_js() -> str:
    return _with_css("roll", "MAIA_CSS")


def keys_js() -> str:
    return _with_css("keys", "KEYS_CSS")
