"""The page as an instrument (issue 22), end to end in Debian's chromium: a phrase played on a MIDI keyboard
becomes the prompt note for note and maia continues it; the on-screen and computer keyboards record; maia's
notes go to a MIDI output in order with their note-offs; a browser without Web MIDI says why in one line.
Web MIDI is a stand-in injected before the page loads: an input whose messages the test sends, an output
that records what it receives."""

import time

import pytest
from helpers import STATS, choose, tab, until

from bench.webmidi import STAND_IN

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FAKE_MIDI = STAND_IN  # bench/webmidi.py: one keyboard in (play, plug), one synth out (sent)
REFUSED = "navigator.requestMIDIAccess = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));"
NO_MIDI = "delete Navigator.prototype.requestMIDIAccess;"


@pytest.fixture(scope="module")
def server(app_url):
    """The app serving the tiny models (conftest.py's app_url); the browser is conftest.py's too."""
    return app_url


def open_page(context, server, script: str | None):
    """The app in ``context``'s tab (helpers.tab; conftest.py's shared_context), with ``script`` run before the
    page's own."""
    page = tab(context, script)
    page.goto(server)
    page.locator("#keys .piano").wait_for()
    return page


def prompt_notes(page) -> list[tuple[int, float, float]]:
    """The prompt the server wrote (the prompt box's played.mid): (pitch, onset, duration) in quarter notes."""
    from playwright.sync_api import expect
    from symusic import Score

    link = page.locator("a[href$='/played.mid']").first
    expect(link).to_be_attached(timeout=30_000)
    score = Score.from_midi(page.request.get(link.get_attribute("href")).body())
    tpq = score.ticks_per_quarter
    notes = sorted((n.time, n.pitch, n.duration) for t in score.tracks for n in t.notes)
    return [(p, s / tpq, d / tpq) for s, p, d in notes]


def test_a_phrase_from_a_midi_keyboard_becomes_the_prompt_and_maias_notes_go_to_midi_out(shared_context, server):
    page = open_page(shared_context, server, FAKE_MIDI)
    page.locator("#keys button.connect").click()
    page.locator("#keys select.midi-out").select_option("out-1")
    assert page.locator("#keys select.midi-in").input_value() == "in-1"  # the one keyboard is chosen
    assert page.evaluate("window.maiaMuted") is True  # the page is muted while MIDI out is on
    page.locator("#keys button.rec").click()
    t0 = page.evaluate("window.maiaKeys.t0") + 1000  # the phrase starts a second after Record
    phrase = [(60, 0.0, 0.4, 100), (64, 0.5, 0.4, 90), (67, 1.0, 0.4, 80), (72, 1.5, 0.9, 70)]  # seconds at 120 qpm
    for p, s, d, v in phrase[:3]:
        page.evaluate(f"window.__midi.play([0x90, {p}, {v}], {t0 + 1000 * s})")
        page.evaluate(f"window.__midi.play([0x80, {p}, 0], {t0 + 1000 * (s + d)})")
    # the last note held by the sustain pedal: its key is up at 1.7 s, the pedal at 2.4 s
    for message, at in [("0x90, 72, 70", 1.5), ("0xb0, 64, 127", 1.6), ("0x80, 72, 0", 1.7), ("0xb0, 64, 0", 2.4)]:
        page.evaluate(f"window.__midi.play([{message}], {t0 + 1000 * at})")
    assert page.evaluate(f"{STATS}.notes().length") == 4  # drawn on the roll as it is played
    page.locator("#keys button.rec").click()  # Stop recording: the take becomes the prompt
    # quantised to 1/16: onsets on the beats, each 0.4 s (0.8 quarter) held for 3 sixteenths
    assert prompt_notes(page) == [(60, 0, 0.75), (64, 1, 0.75), (67, 2, 0.75), (72, 3, 1.75)]

    choose(page, "length-unit", "tokens")
    length = page.get_by_label("number input for Length (tokens)")
    length.fill("64")
    length.press("Enter")
    page.get_by_role("button", name="Compose", exact=True).click()
    until(page, f"{STATS}.done === true && {STATS}.request !== 'take'", timeout=60_000)
    notes = page.evaluate(f"{STATS}.notes()")
    assert [(n[0], n[1]) for n in notes if n[4] == 0] == [(p, s) for p, s, _, _ in phrase]  # the prompt, note for note
    assert page.evaluate(f"{STATS}.gain()") == 0

    # MIDI out: maia's notes, once, in order, each with its note-off after its note-on
    page.wait_for_function("window.maiaKeys.sent === 1", timeout=5_000)
    sent = sorted(page.evaluate("window.__midi.sent"), key=lambda m: m[1])  # stable: sent in time order
    maia = sorted((n for n in notes if n[4] == 1), key=lambda n: n[1])
    assert maia, "maia wrote no notes"
    assert [m[0][1] for m in sent if m[0][0] == 0x90] == [n[0] for n in maia]
    open_at: dict[int, list[float]] = {}
    for (status, pitch, _), at in sent:
        if status == 0x90:
            open_at.setdefault(pitch, []).append(at)
        else:
            assert status == 0x80 and open_at.get(pitch), (status, pitch)
            assert at > open_at[pitch].pop(0)
    assert not any(open_at.values()), "a note was never released"
    # again, with the prompt: the phrase, then maia
    page.locator("#keys input.mine").check()
    page.locator("#keys button.send").click()
    again = sorted(page.evaluate("window.__midi.sent")[len(sent):], key=lambda m: m[1])
    assert [m[0][1] for m in again if m[0][0] == 0x90] == [p for p, *_ in phrase] + [n[0] for n in maia]


def test_the_on_screen_and_computer_keyboards_record(shared_context, server):
    page = open_page(shared_context, server, FAKE_MIDI)
    page.locator("#keys input.quantise").uncheck()  # as played
    page.locator("#keys button.rec").click()
    for p in (60, 64):  # mouse clicks on the on-screen keys
        page.locator(f"#keys .key[data-p='{p}']").click()
        time.sleep(0.15)
    piano = page.locator("#keys .piano")
    piano.focus()
    for key in ("w", "x", "a"):  # C#4, an octave up, C5 (while the keyboard has focus)
        page.keyboard.down(key)
        time.sleep(0.15)
        page.keyboard.up(key)
    # typing in a text field is never captured, even with "Play with the computer keys" on
    page.locator("#keys input.capture").check()
    seed = page.get_by_label("Seed")
    seed.click()
    page.keyboard.press("d")
    page.locator("h1").first.click()  # focus elsewhere on the page: the keys play
    page.keyboard.down("j")
    time.sleep(0.15)
    page.keyboard.up("j")
    page.locator("#keys button.rec").click()
    assert [p for p, _, _ in prompt_notes(page)] == [60, 64, 61, 72, 83]
    # the take is the prompt as an upload is: a permalink carries it
    page.get_by_role("button", name="🔗 Permalink").click()
    find = "[...document.querySelectorAll('textarea, input')].map(e => e.value).find(v => /upload=[0-9a-f]{32}/.test(v))"
    page.wait_for_function(f"() => !!{find}", timeout=10_000)
    # hot-plugging: a keyboard plugged in after connecting appears in the inputs
    page.locator("#keys button.connect").click()
    page.evaluate("window.__midi.plug()")
    assert page.locator("#keys select.midi-in option").all_inner_texts() == [
        "no MIDI input", "Test keyboard", "Second keyboard"]


@pytest.mark.parametrize("script, says", [(NO_MIDI, "No Web MIDI in this browser"), (REFUSED, "MIDI access was refused")],
                         ids=["no-web-midi", "refused"])
def test_without_web_midi_one_line_says_why_and_the_keyboard_still_plays(shared_context, server, script, says):
    page = open_page(shared_context, server, script)
    if script == REFUSED:
        page.locator("#keys button.connect").click()
    why = page.locator("#keys .why")
    assert says in why.inner_text() and "\n" not in why.inner_text().strip()
    page.locator("#keys button.rec").click()
    box = page.locator("#keys .key[data-p='62']").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.8)
    page.mouse.down()  # held: the note grows on the roll while it sounds
    time.sleep(0.6)
    (pitch, start, end, _, who), = page.evaluate(f"{STATS}.notes()")
    assert (pitch, who) == (62, 0) and end - start > 0.4
    page.mouse.up()
    page.locator("#keys button.rec").click()
    assert [p for p, _, _ in prompt_notes(page)] == [62]


def test_a_bad_recording_is_refused_in_one_line():
    from maia import playground
    from maia.errors import InputError
    from maia.serving import Serving

    for data, says in [("", "nothing was played"), ("%%%", "bad base64"), ("TVRoZA==", "played.mid: ")]:
        with pytest.raises(InputError, match=says):
            playground.played_prompt(data, Serving())
