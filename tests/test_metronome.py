"""The instrument's metronome, count-in and live MIDI out (maia/web/keys.js, issue 22), in Debian's chromium with
a stand-in Web MIDI keyboard: after a one-bar count-in a played phrase becomes the prompt where it was played
from the count-in's end (quantised), with no click in it; a pickup in the count-in keeps its bar; "send my
playing" echoes each note to the output as it is played, note-on then note-off, and nothing when off; a duet's
first phrase counts in the same way, and maia's answer streams to the output in order with its note-offs.
The clicks never reach MIDI out."""

from __future__ import annotations

import time

import pytest
from helpers import tab

from bench.webmidi import STAND_IN, open_instrument  # the page with the stand-in Web MIDI keyboard and synth

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEYS = "window.maiaKeys"


def play(page, notes, origin: float):
    """Plays [pitch, onset s, duration s, velocity] from ``origin`` (performance.now() ms) on the MIDI keyboard."""
    for p, s, d, v in notes:
        page.evaluate(f"window.__midi.at([0x90, {p}, {v}], {origin + 1000 * s}); "
                      f"window.__midi.at([0x80, {p}, 0], {origin + 1000 * (s + d)})")


def take_notes(page) -> list[tuple[int, float, float]]:
    """The take the server was given (played.mid in the prompt box): (pitch, onset, duration) in quarter notes."""
    from playwright.sync_api import expect
    from symusic import Score

    link = page.locator("a[href$='/played.mid']").first
    expect(link).to_be_attached(timeout=30_000)
    score = Score.from_midi(page.request.get(link.get_attribute("href")).body())
    tpq = score.ticks_per_quarter
    return sorted((n.pitch, n.time / tpq, n.duration / tpq) for t in score.tracks for n in t.notes)


def count_in_clicks(clicks, t0: float, beat_ms: float) -> list[tuple[int, bool]]:
    """The clicks before ``t0`` as (beat, accented), each checked to sound on its beat."""
    before = [c for c in clicks if c["beat"] < 0]
    for c in before:
        assert c["at"] == pytest.approx(t0 + c["beat"] * beat_ms, abs=1e-6)
    return [(c["beat"], c["accent"]) for c in before]


def test_a_count_in_then_a_phrase_lands_where_it_was_played(shared_context, app_url):
    bpm = 240  # a beat 0.25 s, a sixteenth 62.5 ms, a bar 1 s
    page, keys = open_instrument(tab(shared_context, STAND_IN), app_url, bpm)
    keys.locator("input.count-in").check()
    keys.locator("input.click").check()
    keys.locator("button.rec").click()
    assert keys.locator(".rec-state").inner_text().startswith("count-in")
    t0 = page.evaluate(f"{KEYS}.t0")  # the count-in's end: the take's bar line
    # from the second beat of the first bar, a little late; then on the beats, a little off
    phrase = [(62, 0.26, 0.2, 90), (65, 0.5, 0.2, 80), (69, 0.74, 0.2, 80), (74, 1.0, 0.45, 100)]
    play(page, phrase, t0)
    page.wait_for_function(f"performance.now() > {t0 + 1600}")
    assert keys.locator(".rec-state").inner_text() == "recording…"
    clicks = page.evaluate(f"{KEYS}.clicks")
    assert count_in_clicks(clicks, t0, 250) == [(-4, True), (-3, False), (-2, False), (-1, False)]
    # the metronome goes on through the take, the downbeats accented
    assert [(c["beat"], c["accent"]) for c in clicks if c["beat"] >= 0][:6] == [
        (0, True), (1, False), (2, False), (3, False), (4, True), (5, False)]
    keys.locator("button.rec").click()
    # quantised to 1/16 from the count-in's end: the first note on beat 2 (quarter 1), not moved to 0
    assert take_notes(page) == [(62, 1.0, 0.75), (65, 2.0, 0.75), (69, 3.0, 0.75), (74, 4.0, 1.75)]
    assert page.evaluate(f"{KEYS}.take.length") == len(phrase)  # the played notes and no click
    assert page.evaluate("window.__midi.sent") == []  # clicks never go to MIDI out; "send my playing" is off

    # a second take, count-in only: a pickup on the count-in's last beat keeps its bar (beat 4 of bar 1)
    keys.locator("input.click").uncheck()
    keys.locator("button.rec").click()
    t0 = page.evaluate(f"{KEYS}.t0")
    play(page, [(60, -0.25, 0.2, 90), (67, 0.0, 0.2, 90)], t0)
    page.wait_for_function(f"performance.now() > {t0 + 700}")
    clicks = [c for c in page.evaluate(f"{KEYS}.clicks") if c["at"] > t0 - 1100]
    assert count_in_clicks(clicks, t0, 250) == [(-4, True), (-3, False), (-2, False), (-1, False)]
    assert not [c for c in clicks if c["beat"] >= 0]  # the metronome off: silent after the count-in
    keys.locator("button.rec").click()
    page.wait_for_function(f"{KEYS}.taken === 2")
    assert page.evaluate(f"{KEYS}.take.map(n => [n[0], n[1]])") == [[60, 0.75], [67, 1.0]]


def test_a_busy_page_that_misses_the_first_beat_still_shows_the_take_recording(shared_context, app_url):
    """The metronome skips a beat its timer missed (a busy page, a hidden tab) rather than click it late; the
    take's first beat must still turn the count-in's label into "recording…" (under a loaded CI machine the
    label stayed "count-in 4")."""
    page, keys = open_instrument(tab(shared_context, STAND_IN), app_url, 240)
    keys.locator("input.count-in").check()
    keys.locator("button.rec").click()
    t0 = page.evaluate(f"{KEYS}.t0")
    page.evaluate(f"(() => {{ while (performance.now() < {t0 + 300}) {{}} }})()")  # the page busy over beat 0
    page.wait_for_function(f"performance.now() > {t0 + 600}")
    assert keys.locator(".rec-state").inner_text() == "recording…"
    keys.locator("button.rec").click()


def test_send_my_playing_echoes_each_note_as_it_is_played(shared_context, app_url):
    page, keys = open_instrument(tab(shared_context, STAND_IN), app_url, 120)
    assert not keys.locator("input.echo").is_checked()  # off by default
    keys.locator("input.echo").check()
    keys.locator("input.click").check()  # clicking away while you play: none of it goes out
    keys.locator("button.rec").click()
    keys.locator(".key[data-p='60']").click()  # the on-screen keyboard
    keys.locator(".piano").focus()
    page.keyboard.down("d")  # the computer keys: E4
    time.sleep(0.1)
    page.keyboard.up("d")
    # the MIDI keyboard: G4 held by the pedal and struck again under it (released first), then the pedal up
    now = page.evaluate("performance.now()") + 50
    for bytes_, at in [("0x90, 67, 100", 0), ("0xb0, 64, 127", 50), ("0x80, 67, 0", 100), ("0x90, 67, 70", 200),
                       ("0x80, 67, 0", 300), ("0xb0, 64, 0", 400)]:
        page.evaluate(f"window.__midi.at([{bytes_}], {now + at})")
    page.wait_for_function(f"{KEYS}.echoed === 8", timeout=5_000)
    sent = page.evaluate("window.__midi.sent")
    assert [m[0] for m in sent] == [[0x90, 60, 90], [0x80, 60, 0], [0x90, 64, 90], [0x80, 64, 0],
                                    [0x90, 67, 100], [0x80, 67, 0], [0x90, 67, 70], [0x80, 67, 0]]
    assert [m[1] for m in sent] == sorted(m[1] for m in sent)  # sent as played, in order
    assert page.evaluate(f"{KEYS}.clicks.length") > 0  # the metronome did click meanwhile
    # off: what you play no longer goes out
    keys.locator("input.echo").uncheck()
    keys.locator(".key[data-p='72']").click()
    play(page, [(74, 0.05, 0.1, 80)], page.evaluate("performance.now()"))
    page.wait_for_function(f"{KEYS}.held.size === 0 && {KEYS}.notes.length === 6", timeout=5_000)
    keys.locator("button.rec").click()
    page.wait_for_function(f"{KEYS}.taken === 1")
    assert len(page.evaluate("window.__midi.sent")) == len(sent)
    assert [n[0] for n in page.evaluate(f"{KEYS}.take")] == [60, 64, 67, 67, 72, 74]  # the strike under the pedal kept


def test_a_duet_counts_in_and_maias_answer_streams_to_midi_out(shared_context, app_url):
    bpm = 300  # a beat 0.2 s, a bar 0.8 s
    page, keys = open_instrument(tab(shared_context, STAND_IN), app_url, bpm)
    keys.locator("input.count-in").check()
    keys.locator("select.rest").select_option("1")
    keys.locator("input.answer-bars").fill("1")
    keys.locator("button.duet-on").click()
    page.wait_for_function("window.maiaDuet.ready === true && window.maiaDuet.t0 !== null", timeout=20_000)
    t0 = page.evaluate("window.maiaDuet.t0")  # the count-in's end
    # a D minor phrase from the second beat
    play(page, [(62, 0.21, 0.15, 90), (65, 0.4, 0.15, 80), (69, 0.61, 0.15, 80), (74, 0.8, 0.3, 100)], t0)
    page.wait_for_function("window.maiaDuet.turns.length === 1 && window.maiaDuet.turns[0].done "
                           "&& !window.maiaDuet.answering", timeout=20_000)
    duet = page.evaluate("window.maiaDuet")
    assert not duet["errors"]
    clicks = page.evaluate(f"{KEYS}.clicks")
    assert count_in_clicks(clicks, t0, 200) == [(-4, True), (-3, False), (-2, False), (-1, False)]
    turn = duet["turns"][0]
    # the phrase joined the dialogue where it was played from the count-in's end, on the grid
    assert [(n[0], n[1]) for n in turn["reply"]["yours"]] == [(62, 0.2), (65, 0.4), (69, 0.6), (74, 0.8)]
    # maia's answer went to MIDI out as it streamed, in order, each note-on with its note-off after it; nothing else
    maia = sorted((round(n[1], 3), n[0]) for n in duet["notes"] if n[4] == 1)
    assert maia
    sent = page.evaluate("window.__midi.sent")
    assert [m[1] for m in sent] == sorted(m[1] for m in sent)
    # each note-on stamped with its time in the answer (on the dialogue's clock, from the beat maia came in on), or
    # later when it reached a busy page after its time (a note is never scheduled in the past): the i-th note-on
    # sent is the i-th of the answer in time, the first exactly on its beat
    ons = [(round((at - duet["t0"] - duet["shift"]) / 1000, 3), p) for (s, p, _), at in sent if s == 0x90]
    times = [t for t, _ in maia]
    assert sorted(zip(times, (p for _, p in ons), strict=True)) == maia
    assert ons[0][0] == maia[0][0] and all(t >= want - 1e-3 for (t, _), want in zip(ons, times, strict=True))
    sounding: dict[int, float] = {}
    for (status, pitch, _), at in sent:
        if status == 0x90:
            assert pitch not in sounding
            sounding[pitch] = at
        else:
            assert status == 0x80 and at >= sounding.pop(pitch)
    assert not sounding, "a note was never released"
    keys.locator("button.duet-on").click()
