"""End to end: app.py in a subprocess, the page in Debian's chromium driven by Playwright (no browser is
ever downloaded): upload a MIDI, compose, and see the piano roll and the audio player arrive."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
_spec = importlib.util.spec_from_file_location("appserver", ROOT / "bench" / "appserver.py")
appserver = importlib.util.module_from_spec(_spec)  # bench/appserver.py: app.py in a subprocess
_spec.loader.exec_module(appserver)


@pytest.fixture
def server(tiny_models_dir, tmp_path):
    """The app on a free port of 127.0.0.1, serving the tiny models; stopped by PID afterwards."""
    log = tmp_path / "app.log"
    try:
        with appserver.serve(tiny_models_dir, log, timeout=120) as (url, _pid):
            yield url
    except RuntimeError as e:  # app.py exited or never served
        pytest.fail(f"{e}:\n{log.read_text()[-2000:]}")


def test_upload_compose_and_see_and_hear(server, tiny_midi):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(server)
            page.locator("input[type=file]").first.set_input_files(str(tiny_midi))
            expect(page.get_by_text("arpeggio.mid").first).to_be_visible(timeout=30_000)
            length = page.get_by_label("number input for Length (tokens)")
            length.fill("64")
            length.press("Enter")
            page.get_by_role("button", name="Compose", exact=True).click()
            # The piano roll of variation 1 and an audio player with the music arrive...
            expect(page.locator("img[src*='maia-1-roll']")).to_be_visible(timeout=60_000)
            expect(page.locator("audio[src]").first).to_be_attached(timeout=60_000)
            # ...and the finished piece offers its MIDI and MusicXML.
            expect(page.get_by_text("done:")).to_be_visible(timeout=120_000)
            expect(page.locator("a[href$='/maia-1.mid']")).to_be_visible()
            expect(page.locator("a[href$='/maia-1.musicxml']")).to_be_visible()
            expect(page.get_by_text("Key:")).to_be_visible()
            expect(page.get_by_text("64/64 tokens").or_(page.get_by_text("reached the end"))).to_be_visible()
        finally:
            browser.close()
