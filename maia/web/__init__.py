"""The browser code maia ships (no CDN, nothing fetched at run time): the live piano roll and player.

``roll_js()`` is the ``js_on_load`` of the page's gr.HTML roll, with its stylesheet inlined."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROLL_TEMPLATE = '<div class="maia-live" data-slot="${slot}"></div>'


def roll_js() -> str:
    css = (HERE / "roll.css").read_text(encoding="utf-8")
    return f"const MAIA_CSS = {json.dumps(css)};\n" + (HERE / "roll.js").read_text(encoding="utf-8")
