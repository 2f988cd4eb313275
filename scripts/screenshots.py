"""Screenshots of the playground for the README, at 1400 x 1000 in Debian's chromium: a piece from a composer
alone while maia composes and plays it, and the Lacrimosa completed, with its sheet music. app.py runs on a free
port of 127.0.0.1 with the shipped models.

    .venv/bin/python -m scripts.screenshots        # writes docs/playground-streaming.png, docs/playground-sheet.png
"""

from __future__ import annotations

import json
import time

from bench.appserver import ROOT, serve
from bench.webmidi import CHROMIUM, CHROMIUM_ARGS
from maia.checkpoint import DEFAULT_ROOT

LIVE = "window.maiaLive && window.maiaLive['1']"


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    with serve(DEFAULT_ROOT) as (url, _pid), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        # from a composer alone (all maia's colour), 16 bars ending in the home key, while it composes and plays
        page.get_by_role("button", name="Compose", exact=True).click()
        page.wait_for_function(f"{LIVE} && {LIVE}.updates >= 6 && {LIVE}.position() > 3", timeout=300_000)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ROOT / "docs" / "playground-streaming.png"))
        expect(page.get_by_text("writing the sheet music")).to_have_count(0, timeout=300_000)
        expect(page.get_by_text("done:")).to_be_visible(timeout=300_000)
        # the Lacrimosa: Mozart's 8 bars and maia's 22, ABA, ending in D minor, with its sheet music
        first = page.evaluate(f"{LIVE}.request")
        page.get_by_role("button", name="Complete the Lacrimosa (Mozart)").click()
        page.wait_for_function(f"{LIVE}.final === true && {LIVE}.request !== {json.dumps(first)}", timeout=600_000)
        expect(page.get_by_text("writing the sheet music")).to_have_count(0, timeout=60_000)
        page.locator("#live-1 button.tab-sheet").click()
        time.sleep(1.5)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ROOT / "docs" / "playground-sheet.png"))
        browser.close()


if __name__ == "__main__":
    main()
