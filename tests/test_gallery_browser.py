"""End to end: the gallery and the listening room in app.py, driven in Debian's chromium by Playwright (no
browser is ever downloaded). A piece composed in the playground is saved with a title, found in the Gallery
tab, played, and its permalink restores its settings in a fresh browser; a vote in the Listen tab reveals
which was which; a browser deletes its own piece and cannot delete another's; a title with HTML is text."""

from __future__ import annotations

import re

import pytest
from helpers import CHROMIUM, VIEWPORT, until

from bench import webmidi
from maia.gallery.shelf import Work, seed
from maia.gallery.store import Gallery
from maia.limits import Limits

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TITLE = "<script>window.maiaPwned = 1</script><b>bold</b> & <img src=x onerror=\"window.maiaPwned = 2\">"
PAIR = (Work("Lacrimosa by the tiny GPT", "lacrimosa.mid", "mozart", "gpt"),
        Work("Lacrimosa by the tiny LSTM", "lacrimosa.mid", "mozart", "lstm"))


@pytest.fixture(scope="module")
def server(app_url, dense_models_dir, gallery_data_dir):
    """The session's app server (conftest's app_server, whose gallery is this test process's gallery_data_dir, which
    no other test writes to), its gallery holding one pair (two continuations of the Lacrimosa): (url, that
    gallery). The server reads the gallery's database at each request, so a pair added while it runs is served."""
    if not CHROMIUM.exists():
        pytest.skip(webmidi.MISSING)
    limits = Limits(models_dir=str(dense_models_dir), device="cpu", data_dir=str(gallery_data_dir))
    gallery = Gallery.open(limits)
    added = seed(gallery, limits, tokens=16, works=PAIR, progress=lambda line: None)
    assert "wav" in gallery.get(added[0]).files, "the listening room needs FluidSynth (make test installs it)"
    return app_url, gallery


def fresh_page(browser, url):
    """A page in a new browser context: its own local storage, so its own gallery token."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(url)
    return page


def pick(page, title: str):
    """Opens the Gallery tab and selects the piece whose label starts with ``title``."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Gallery").click()
    label = page.locator("#gallery-pieces label").filter(has_text=title)
    expect(label).to_have_count(1, timeout=15_000)
    label.click()
    expect(page.locator("#gallery-title textarea")).to_have_value(title, timeout=15_000)


def test_save_find_play_link_vote_and_delete(server, browser):
    from playwright.sync_api import expect

    url, gallery = server
    me = fresh_page(browser, url)
    # compose in the playground (no prompt: the composer alone), then save it with an HTML title
    me.locator("#length-unit input").click()  # the length in tokens: the Advanced panel opens
    me.get_by_role("option", name="tokens", exact=True).click()
    length = me.get_by_label("number input for Length (tokens)")
    expect(length).to_be_visible()
    length.fill("64")
    length.press("Enter")
    me.get_by_label("Seed", exact=True).fill("7")  # the seed the permalink must bring back
    me.get_by_label("Seed", exact=True).press("Enter")
    me.get_by_role("button", name="Compose", exact=True).click()
    expect(me.get_by_text("done:")).to_be_visible(timeout=60_000)
    # "done: … writing the sheet music…" comes first (MIDI and WAV); the MusicXML and the roll follow
    expect(me.get_by_text("writing the sheet music")).to_have_count(0, timeout=60_000)
    me.locator("#gallery-save-title textarea").fill(TITLE)
    me.locator("#gallery-save").click()
    saved = me.locator("#gallery-saved textarea")
    expect(saved).to_have_value(re.compile(r"saved to the gallery as [0-9a-f]{16}"), timeout=15_000)
    uid = saved.input_value().rsplit(" ", 1)[1]
    assert gallery.get(uid).title == TITLE and gallery.get(uid).seed == 7

    # the Gallery tab lists it by its title, as text; the HTML in it never runs
    pick(me, TITLE)
    assert me.evaluate("window.maiaPwned") is None
    assert me.locator("#gallery-pieces b, #gallery-pieces script, #gallery-pieces img").count() == 0
    expect(me.locator("#gallery-delete")).to_be_enabled()  # its owner may delete it
    # its sheet music, engraved when opened: Verovio's SVG, with no markup of the title run
    expect(me.locator("#gallery-sheet svg").first).to_be_visible(timeout=15_000)
    assert me.locator("#gallery-sheet script, #gallery-sheet foreignObject").count() == 0
    assert me.evaluate("window.maiaPwned") is None
    # it plays: the audio's clock moves
    expect(me.locator("#gallery-audio #duration")).not_to_have_text("0:00", timeout=15_000)
    me.locator("#gallery-audio").get_by_role("button", name="Play", exact=True).click()
    expect(me.locator("#gallery-audio #time")).not_to_have_text("0:00", timeout=15_000)
    # its downloads are named after the title, not after a hash
    names = me.eval_on_selector_all("a[download]", "els => els.map(e => e.getAttribute('download'))")
    assert any(n.endswith(".mid") and "bold" in n for n in names), names

    # the permalink opens the playground with its settings, in a browser that never saw it
    link = me.locator("#gallery-link textarea").input_value()
    assert link.startswith(url) and "seed=7" in link and "tokens=64" in link
    other = fresh_page(browser, link)
    expect(other.get_by_label("Seed", exact=True)).to_have_value("7", timeout=15_000)
    expect(other.get_by_label("number input for Length (tokens)")).to_have_value("64")

    # another browser cannot delete it: the button is off, and a forced click is refused by the server. That browser
    # has its own token first (demo.load sets it; Gradio keeps it in local storage): without one, the refusal says
    # "this browser has no gallery token", a toast gone after 10 s
    until(other, "localStorage.getItem('maia-gallery-token') !== null")
    pick(other, TITLE)
    delete = other.locator("#gallery-delete")
    expect(delete).to_be_disabled()
    delete.evaluate("b => b.removeAttribute('disabled')")
    delete.click(force=True)
    expect(other.get_by_text("only the browser that saved a piece can delete it")).to_be_visible(timeout=15_000)
    assert gallery.get(uid) is not None
    expect(other.locator("#gallery-deleted")).not_to_have_text("deleted")

    # the listening room: a blind pair of the Lacrimosa, one vote, then which was which and the leaderboard
    me.get_by_role("tab", name="Listen").click()
    votes = [me.locator(f"#listen-vote-{c}") for c in ("a", "same", "b")]
    expect(votes[0]).to_be_disabled()  # nothing to vote on before a pair
    me.get_by_role("button", name="Next pair").click()
    expect(votes[0]).to_be_enabled(timeout=15_000)
    for side in ("#listen-a", "#listen-b"):
        expect(me.locator(f"{side} #duration")).not_to_have_text("0:00", timeout=15_000)
    assert "gpt" not in me.locator("#listen-reveal textarea").input_value()
    me.get_by_role("button", name="A is better").click()
    reveal = me.locator("#listen-reveal textarea")
    expect(reveal).to_have_value(re.compile(r"A was (gpt|lstm) · .*; B was (gpt|lstm) · "), timeout=15_000)
    for button in votes:  # off once voted, until the next pair: no second vote on this one
        expect(button).to_be_disabled()
    assert gallery.games() and len(gallery.games()) == 1
    for variant in ("gpt · top-k 5 · T 1", "lstm · top-k 5 · T 1"):  # both on the leaderboard, one vote each
        expect(me.locator("#listen-board")).to_contain_text(variant, timeout=15_000)

    # its owner deletes it: gone from the list and from the gallery
    pick(me, TITLE)
    me.locator("#gallery-delete").click()
    expect(me.locator("#gallery-deleted")).to_have_text("deleted", timeout=15_000)
    expect(me.locator("#gallery-pieces label").filter(has_text=TITLE)).to_have_count(0)
    assert gallery.get(uid) is None
