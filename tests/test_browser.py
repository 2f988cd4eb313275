"""End to end: app.py in a subprocess, the page in Debian's chromium driven by Playwright (no browser is
ever downloaded). The live piano roll fills in while maia samples, the audio starts before the last
update and never restarts, the playhead follows the audio and seeks on a click, and the finished piece
shows its sheet music. And /generate answers gradio_client the way the README calls it."""

import itertools
import json
import time
from pathlib import Path

import pytest

from bench.appserver import serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
# as the probe runs it: no first-run, no background networking (the sandbox's network is closed); audio
# may start without a click in the page, as it does for a user after clicking Compose
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
STATS = "window.maiaLive && window.maiaLive['1']"


@pytest.fixture(scope="module")
def server(tiny_models_dir, tmp_path_factory):
    """The app on a free port of 127.0.0.1, serving the tiny models; stopped by PID afterwards."""
    log = tmp_path_factory.mktemp("app") / "app.log"
    try:
        with serve(tiny_models_dir, log, timeout=120) as (url, _pid):
            yield url
    except RuntimeError as e:  # app.py exited or never served
        pytest.fail(f"{e}:\n{log.read_text()[-2000:]}")


@pytest.fixture
def page(server):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            yield page
        finally:
            browser.close()


def compose(page, midi: Path | None, tokens: int):
    from playwright.sync_api import expect

    if midi is not None:
        page.locator("input[type=file]").first.set_input_files(str(midi))
        expect(page.get_by_text(midi.name).first).to_be_visible(timeout=30_000)
    length = page.get_by_label("number input for Length (tokens)")
    length.fill(str(tokens))
    length.press("Enter")
    page.get_by_role("button", name="Compose", exact=True).click()


def stats(page) -> dict:
    return page.evaluate(f"(() => {{ const s = {STATS}; return JSON.parse(JSON.stringify(s)); }})()")


def test_the_roll_fills_in_plays_follows_and_seeks(page, tiny_midi):
    from playwright.sync_api import expect

    compose(page, tiny_midi, 1536)
    # notes are on the canvas while sampling runs: the prompt's blue at the first update, maia's orange
    # before the last one
    page.wait_for_function(f"{STATS} && {STATS}.firstNoteMs !== null", timeout=60_000)
    first = stats(page)
    assert first["firstNoteDone"] is False and first["firstNoteSeq"] == 0
    assert page.evaluate(f"{STATS}.notePixels()")["blue"] > 50
    page.wait_for_function(f"{STATS}.notePixels().orange > 50", timeout=60_000)
    assert not stats(page)["done"], "maia's notes should show while it is still composing"
    # the audio starts with the first notes, before the last update
    page.wait_for_function(f"{STATS}.playStarts >= 1", timeout=60_000)
    expect(page.get_by_text("done:")).to_be_visible(timeout=120_000)
    s = stats(page)
    assert s["startedBeforeDone"] is True and s["playSeq"] < s["seq"]
    assert s["playStarts"] == 1, "the player never restarts while the music arrives"
    assert s["gaps"] == 0 and s["chunks"] >= 2
    positions = [p for _, p in s["positions"]]
    assert len(positions) > 10 and all(b >= a - 1e-6 for a, b in itertools.pairwise(positions))
    # the playhead moves with the audio
    p1 = page.evaluate(f"{STATS}.position()")
    time.sleep(0.6)
    p2 = page.evaluate(f"{STATS}.position()")
    assert 0.3 < p2 - p1 < 1.5, (p1, p2)
    # pause, then a click on the roll seeks there: the playhead goes to the clicked time
    roll = page.locator("#live-1 canvas.roll")
    page.locator("#live-1 button.play").click()
    view = page.evaluate(f"{STATS}.view()")
    box = roll.bounding_box()
    x = box["width"] * 0.6
    roll.click(position={"x": x, "y": box["height"] / 2})
    want = view["left"] + (x - view["keys"]) / view["pps"]
    assert abs(page.evaluate(f"{STATS}.position()") - want) < 0.05
    page.locator("#live-1 button.play").click()  # play from there
    time.sleep(0.4)
    assert page.evaluate(f"{STATS}.position()") > want + 0.1
    # the sheet music tab shows Verovio's engraving
    page.locator("#live-1 button.tab-sheet").click()
    expect(page.locator("#live-1 .sheet svg").first).to_be_visible()
    assert page.locator("#live-1 .sheet g.note").count() > 0
    # downloads of the finished piece
    for suffix in (".mid", ".wav", ".musicxml", "-roll.png"):
        expect(page.locator(f"a[href$='maia-1{suffix}']")).to_be_visible()
    expect(page.get_by_text("Key:")).to_be_visible()


def test_a_piece_from_a_composer_alone_is_drawn_in_maias_colour(page):
    compose(page, None, 256)
    page.wait_for_function(f"{STATS} && {STATS}.done === true", timeout=120_000)
    pixels = page.evaluate(f"{STATS}.notePixels()")
    assert pixels["orange"] > 50 and pixels["blue"] == 0


def test_generate_answers_gradio_client_as_the_readme_shows(server, tiny_midi):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    result = client.predict(prompt_midi=handle_file(str(tiny_midi)), composer="mozart", model="gpt", tokens=64,
                            top_k=5, temperature=1.0, seed=1, variations=1, api_name="/generate")
    live, files, analysis = result[:3]  # variation 1, as in the README
    assert json.loads(live)["done"] is True
    midi, wav, musicxml, roll_png = files
    assert Path(midi).read_bytes()[:4] == b"MThd" and Path(wav).read_bytes()[:4] == b"RIFF"
    assert Path(roll_png).read_bytes()[:4] == b"\x89PNG" and "<score-partwise" in Path(musicxml).read_text()
    assert analysis.startswith("Key:") and tuple(result[3:6]) == ("", None, "")
    assert len(result) == 13 and result[12].startswith("done: 64/64 tokens")
