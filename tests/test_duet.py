"""The duet (maia/duet.py): your phrase in, maia's answer out, the dialogue one piece. Unit tests with a tiny
model (exact length in bars, the asked key, the cache kept between turns, one-line refusals), and the page in
Debian's chromium with a stand-in Web MIDI keyboard: a duet of several turns, each answer after its phrase,
in key, on the page's synth and MIDI out, and the whole piece downloads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import STATS, tab, until

from bench.webmidi import STAND_IN, open_instrument  # the stand-in Web MIDI keyboard the benchmark plays too
from maia.controls import SCALES
from maia.duet import MAX_BARS, MAX_TURNS, Duet, Duets, Request
from maia.errors import InputError
from maia.generate import SamplingConfig
from maia.metrics import estimate_key

D_MINOR = (2, "minor")


@pytest.fixture(scope="module")
def tiny():
    """helpers.tiny_model's GPT with a window of 512 tokens (a duet's prompt and answer fit, so the KV cache is
    kept between turns)."""
    from helpers import tiny_model

    from maia.vocab import Vocab

    vocab = Vocab(composers=("bach", "mozart", "chopin"))
    return tiny_model("gpt", vocab, block_size=512), vocab


def phrase(start: float = 0.0, pitches=(62, 65, 69, 74, 73, 69), step: float = 0.25) -> list:
    """A D minor phrase from ``start`` (seconds at 120 qpm: a sixteenth is 0.125 s)."""
    return [[p, start + i * step, start + i * step + 0.2, 80] for i, p in enumerate(pitches)]


def play(duet: Duet, message: dict) -> list[tuple]:
    return list(duet.turn(message).events())


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("bars", [1, 3])
def test_an_answer_fills_exactly_its_bars_from_the_beat_in_the_phrase_key(tiny, bars):
    model, vocab = tiny
    duet = Duet(model, vocab, "bach", 120, SamplingConfig(seed=3))
    events = play(duet, {"notes": phrase(), "beat": 4, "bars": bars})
    assert duet.end == (4 + 4 * bars) * 12  # the answer's span: from beat 4, `bars` bars of 4/4
    ons = [e for e in events if e[0] == "on"]
    offs = [e for e in events if e[0] == "off"]
    assert ons and ons[0][2] == 2.0  # maia comes in on beat 4 (2 s at 120 qpm), with a note
    assert len(ons) == len(offs)  # every key is released...
    assert max(e[2] for e in offs) <= 2.0 + 2.0 * bars  # ...within the answer's bars
    assert all((p - D_MINOR[0]) % 12 in SCALES["minor"] for _, p, _, _ in ons)  # the phrase's key, D minor
    who = duet.who
    assert (who == 0).sum() == len(phrase()) and (who == 1).sum() == len(ons)  # the dialogue holds both


@pytest.mark.usefixtures("one_torch_thread")
def test_an_answers_events_come_in_time_order_and_each_key_is_struck_once_at_a_time():
    """MIDI out sends the events as they come, each stamped with its time: a key struck and released at one step
    (it sounds a step) must not send its release before the keys struck at that same step, and a key struck twice
    at one step is struck once. A model as dense as the piano model's does both often."""
    from helpers import as_dense_as_piano, tiny_model

    from maia.vocab import Vocab

    vocab = Vocab(composers=("bach", "mozart", "chopin"))
    model = as_dense_as_piano(tiny_model("gpt", vocab, block_size=512), vocab)
    for seed in range(3):
        events = play(Duet(model, vocab, "bach", 300, SamplingConfig(seed=seed)), {"notes": phrase(), "beat": 8,
                                                                                 "bars": 1})
        times = [e[2] for e in events]
        assert times == sorted(times), seed
        down: set[int] = set()
        for kind, pitch, *_ in events:
            assert (pitch in down) == (kind == "off"), (seed, kind, pitch)  # on, off, on, off... per key
            (down.add if kind == "on" else down.discard)(pitch)
        assert not down


@pytest.mark.usefixtures("one_torch_thread")
def test_a_dialogue_of_turns_is_one_piece_and_reuses_the_cache(tiny):
    model, vocab = tiny
    duet = Duet(model, vocab, "mozart", 100, SamplingConfig(seed=0))
    beat = 3
    for _ in range(3):
        start = beat * 0.6  # seconds per beat at 100 qpm
        turn = duet.turn({"notes": phrase(start + 0.6, (60, 64, 67, 72)), "beat": beat + 4, "bars": 1,
                          "key": "C major"})
        ons = [e for e in turn.events() if e[0] == "on"]
        assert ons[0][2] == pytest.approx((beat + 4) * 0.6)
        assert all((p % 12) in SCALES["major"] for _, p, _, _ in ons)
        beat = duet.end // 12
    assert duet.turns == 3 and duet.end == 27 * 12  # answers at beats 7, 15 and 23, a bar each
    # the third answer's prompt is what maia heard and played last turn (all in its cache), then the new phrase
    assert turn.model.reused > 0 and len(turn.prompt_ids) - turn.model.reused <= 20
    piece = duet.piece()
    assert piece.tempo_qpm == 100 and len(piece.notes) == len(duet.who) and (duet.who == 0).sum() == 12


@pytest.mark.usefixtures("one_torch_thread")
def test_a_long_dialogue_is_heard_from_a_later_bar(tiny):
    model, vocab = tiny
    duet = Duet(model, vocab, "chopin", 120, SamplingConfig(seed=1), max_prompt_tokens=64)
    beat = 0
    fed = []
    for _ in range(5):
        turn = duet.turn({"notes": phrase(beat * 0.5), "beat": beat + 4, "bars": 1, "key": "off"})
        list(turn.events())
        assert len(turn.prompt_ids) <= 64
        fed.append(len(turn.prompt_ids) - turn.model.reused)
        duet.prepare()  # between turns (the route calls it after "done"): cut and primed when it grew long
        beat = duet.end // 12
    assert duet.origin > 0 and duet.origin % 48 == 0  # cut at a bar line
    assert max(fed[1:]) <= 6 * 3 + 4  # every turn after the first fed only its phrase (and rest) to the model


@pytest.mark.parametrize("message, says", [
    ({"notes": [], "beat": 4}, "nothing was played"),
    ({"notes": phrase()}, "needs the beat"),
    ({"notes": phrase(), "beat": 1}, "must come in after your phrase"),
    ({"notes": phrase(), "beat": 400}, "at most 16 beats after"),
    ({"notes": phrase(), "beat": 4, "bars": MAX_BARS + 1}, "bars must be 1..8"),
    ({"notes": phrase(), "beat": 4, "bars": 1.5}, "bars must be a whole number"),
    ({"notes": [[60, 0, 0.5]], "beat": 4}, "note 1 of the phrase is not"),
    ({"notes": [[60, 1.0, 0.5, 80]], "beat": 4}, "released before it is struck"),
    ({"notes": [[200, 0, 0.5, 80]], "beat": 4}, "note 1's pitch must be 0..127"),
    ({"notes": [["x", 0, 0.5, 80]], "beat": 4}, "must be a number"),
    ({"notes": "C D E", "beat": 4}, "a phrase is a list"),
    ({"notes": phrase(), "beat": 4, "key": "H minor"}, "key 'H minor'"),
    ({"notes": phrase(), "beat": 4, "lowest": 60, "highest": 64}, "at least an octave"),
    ({"notes": phrase(), "beat": 4, "tempo": 90}, "unknown setting 'tempo'"),
    ([1, 2], "a turn is a JSON object"),
])
def test_bad_input_is_one_line_and_leaves_the_dialogue_as_it_was(tiny, message, says):
    model, vocab = tiny
    duet = Duet(model, vocab, "bach")
    with pytest.raises(InputError, match=says) as e:
        duet.turn(message)
    assert "\n" not in str(e.value)
    assert duet.turns == 0 and len(duet.notes) == 0


def test_bounds_and_settings(tiny):
    model, vocab = tiny
    with pytest.raises(InputError, match="unknown composer"):
        Duet(model, vocab, "nobody")
    with pytest.raises(InputError, match="tempo"):
        Duet(model, vocab, "bach", bpm=1000)
    duet = Duet(model, vocab, "bach")
    duet.turns = MAX_TURNS
    with pytest.raises(InputError, match=f"its {MAX_TURNS} turns"):
        duet.turn({"notes": phrase(), "beat": 4})
    request = Request.read({"notes": phrase(), "beat": 4, "key": "off", "lowest": 48, "highest": 84, "density": 2})
    c = Duet(model, vocab, "bach").controls(request)
    assert c.key is None and (c.lowest, c.highest, c.density) == (48, 84, 2.0)
    duets = Duets(lambda name: (model, vocab))
    with pytest.raises(InputError, match="a duet begins with"):
        duets.start(["turn"])
    with pytest.raises(InputError, match="temperature must be"):
        duets.start({"type": "start", "temperature": 0})


def test_a_finished_duet_that_cannot_be_read_is_refused_in_one_line():
    from maia.playground import finish_duet

    for data, turns, says in [("", [[1, 2]], "no notes yet"), ("%%", [[1, 2]], "bad base64"),
                              ("TVRoZA==", [[1, 2]], "duet.mid: "), (MIDI_OF_A_DUET, None, "when maia played"),
                              (MIDI_OF_A_DUET, [[1]], "when maia played"), (MIDI_OF_A_DUET, [["x", 2]], "when maia played")]:
        with pytest.raises(InputError, match=says) as e:
            finish_duet(data, turns)
        assert "\n" not in str(e.value)


def _duet_midi() -> str:
    """A two-turn dialogue at 120 qpm as the page writes it (base64): yours at 0-1 s and 3-4 s, maia's at 1-3 s and
    4-6 s (a half note each)."""
    import base64
    import tempfile
    from pathlib import Path

    import numpy as np

    from maia.encoding import Piece

    onsets = [0, 6, 24, 48, 72, 78, 96, 120]  # steps (12 a quarter): yours, yours, maia, maia, yours, yours, maia, maia
    notes = np.array([[s, 6, 60 + i, 80] for i, s in enumerate(onsets)])
    with tempfile.TemporaryDirectory() as folder:
        return base64.b64encode(Piece(notes, 12, 120).write_midi(Path(folder) / "d.mid").read_bytes()).decode()


MIDI_OF_A_DUET = _duet_midi()


def test_a_finished_duet_is_the_page_piece_and_its_history_keeps_who_played(tmp_path):
    """The finished duet goes through the page's finishing (maia.playground.show): the roll's message with
    yours and maia's notes, the sheet music, the files; the history keeps maia's turns, so Undo/Redo shows it so."""
    from maia import history as page_history
    from maia import playground

    update = playground.finish_duet(MIDI_OF_A_DUET, [[1.0, 3.0], [4.0, 6.0]])
    out = update.outputs[0]
    message = json.loads(out.live)
    assert message["done"] and message["turns"] == [[1.0, 3.0], [4.0, 6.0]]
    assert [n[4] for n in message["notes"]] == [0, 0, 1, 1, 0, 0, 1, 1]  # who played each note, in time order
    assert out.midi.suffix == ".mid" and out.musicxml is not None and out.roll is not None
    assert "a duet of 2 turns" in update.status
    history = page_history.remember(page_history.new_history(), out.live, [str(out.midi)], update.status)
    assert history["items"][0]["turns_s"] == [[1.0, 3.0], [4.0, 6.0]]
    again = json.loads(playground.show(history["items"][0]).outputs[0].live)
    assert [n[4] for n in again["notes"]] == [0, 0, 1, 1, 0, 0, 1, 1]


def test_the_routes_stream_an_answer_and_refuse_in_one_line(tiny):
    """The routes on a bare Starlette app (the page's server mounts the same ones)."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    model, vocab = tiny
    duets = Duets(lambda name: (model, vocab), limit=1)
    client = TestClient(Starlette(routes=duets.routes("/maia/duet")))
    r = client.post("/maia/duet/start", content="not json")
    assert r.status_code == 400 and r.json() == {"type": "error", "message": "a duet's messages are JSON objects"}
    key = client.post("/maia/duet/start", json={"model": "gpt", "composer": "bach", "bpm": 120, "seed": 4}).json()["duet"]
    assert "duets already" in client.post("/maia/duet/start", json={}).json()["message"]  # one at a time here
    lines = [json.loads(x) for x in client.post("/maia/duet/turn", json={"duet": key, "notes": phrase(), "beat": 4,
                                                                         "bars": 1}).iter_lines() if x]
    assert lines[0]["type"] == "on" and lines[0]["t"] == 2.0
    done = lines[-1]
    assert done["type"] == "done" and done["end"] == 4.0 and len(done["yours"]) == len(phrase())
    assert {m["type"] for m in lines[:-1]} == {"on", "off"}
    r = client.post("/maia/duet/turn", json={"duet": key, "notes": phrase(), "beat": 4})
    assert r.status_code == 400 and "must come in after" in r.json()["message"]  # refused; the duet goes on
    client.post("/maia/duet/end", json={"duet": key})
    assert "this duet is over" in client.post("/maia/duet/turn", json={"duet": key, "notes": phrase(), "beat": 12}).json()["message"]


# ---- the page: a duet in Debian's chromium ---------------------------------------------------------------------
BPM = 300  # a quick duet: a beat is 0.2 s, a bar 0.8 s
D_MINOR_PHRASE = [(62, 0.0, 0.15, 90), (65, 0.2, 0.15, 80), (69, 0.4, 0.15, 80), (74, 0.6, 0.3, 100)]


@pytest.fixture(scope="module")
def server(app_url):
    """The app serving the tiny models (conftest.py's app_url); the browser is conftest.py's too."""
    return app_url


@pytest.mark.browser
@pytest.mark.slow
def test_a_duet_of_three_turns_in_the_browser(server, shared_context):
    from symusic import Score

    page, keys = open_instrument(tab(shared_context, STAND_IN), server, BPM)
    keys.locator("select.rest").select_option("1")
    keys.locator("input.answer-bars").fill("1")
    keys.locator("input.pedal-ends").check()
    keys.locator("button.duet-on").click()
    page.wait_for_function("window.maiaDuet.ready === true", timeout=20_000)
    # turn 1 ends with a rest, turn 2 with "Your turn, maia", turn 3 with the sustain pedal coming up
    for i, how in enumerate(["rest", "key", "pedal"]):
        extra = [[[0xB0, 64, 127], 0.05], [[0xB0, 64, 0], 1.0]] if how == "pedal" else []
        # "Your turn, maia" is clicked in the page as the phrase's last key comes up: a click sent from here can
        # land after the one-beat rest (0.2 s at 300 qpm) when the machine is busy, and the rest would end the turn
        button = keys.locator("button.your-turn").element_handle() if how == "key" else None
        page.evaluate("([notes, extra, button]) => window.__midi.phrase(notes, extra).then(() => button && button.click())",
                      [[list(n) for n in D_MINOR_PHRASE], extra, button])
        until(page, f"window.maiaDuet.turns.length === {i + 1} && window.maiaDuet.turns[{i}].done "
                    "&& !window.maiaDuet.answering", timeout=20_000)
    duet = page.evaluate("window.maiaDuet")
    assert not duet["errors"] and [t["why"] for t in duet["turns"]] == ["rest", "key", "pedal"]
    notes, beat = duet["notes"], 60 / BPM
    maia = [n for n in notes if n[4] == 1]
    assert maia and len([n for n in notes if n[4] == 0]) == 3 * len(D_MINOR_PHRASE)
    yours = []  # your phrases as the server heard them, on its grid ("done"'s "yours")
    for t in duet["turns"]:
        start = t["beat"] * beat
        phrase_end = max(n[2] for n in notes if n[4] == 0 and n[1] < start)
        assert start > phrase_end - 1e-6  # maia comes in after the phrase...
        assert t["at"] >= t["detected"]  # ...on a beat after its end was detected...
        assert t["first"] >= t["at"] - 1 and t["notes"] > 0  # ...and its first note sounds there, not before
        mine = [n for n in maia if start - 1e-6 <= n[1] < t["reply"]["end"]]
        assert mine and min(n[1] for n in mine) == pytest.approx(start, abs=1e-3)
        assert max(n[2] for n in mine) <= t["reply"]["end"] + 1e-3  # within its bar
        # in the key of everything you played so far: D minor as written, though a busy page's timing can change
        # the lengths that Krumhansl-Schmuckler weighs (to F major's notes, or B-flat major's)
        yours += t["reply"]["yours"]
        tonic, mode, _ = estimate_key(np.array([[round(1000 * s), round(1000 * (e - s)), p, v] for p, s, e, v in yours]))
        assert all((n[0] - tonic) % 12 in SCALES[mode] for n in mine), (tonic, mode, [n[0] for n in mine])
    ons = [m for m in page.evaluate("window.__midi.sent") if m[0][0] == 0x90]
    assert sorted(m[0][1] for m in ons) == sorted(n[0] for n in maia)  # every answer went to MIDI out too
    # the whole dialogue downloads as one MIDI file, note for note
    with page.expect_download() as download:
        keys.locator("a.duet-midi").click()
    score = Score.from_midi(download.value.path().read_bytes())
    got = sorted((n.pitch, round(n.time / score.ticks_per_quarter * beat, 3)) for t in score.tracks for n in t.notes)
    assert got == sorted((n[0], round(n[1], 3)) for n in notes)


def _midi_notes(page, link) -> list[tuple[int, float]]:
    """(pitch, onset in seconds at BPM) of the MIDI file a download link of the page points to."""
    from symusic import Score

    score = Score.from_midi(page.request.get(link.get_attribute("href")).body())
    return sorted({(n.pitch, round(n.time / score.ticks_per_quarter * 60 / BPM, 2)) for t in score.tracks for n in t.notes})


@pytest.mark.browser
@pytest.mark.slow
def test_an_ended_duet_is_the_page_piece_with_sheet_music_and_a_place_in_the_history(server, shared_context):
    """A piece composed, then a duet of two turns, ended: variation 1 shows the dialogue (yours blue, maia's
    orange), its Sheet music tab, its downloads; Undo brings the composed piece back and Redo the duet."""
    from playwright.sync_api import expect

    page = tab(shared_context, STAND_IN)
    page.goto(server)
    roll, keys = page.locator("#live-1"), page.locator("#keys")
    undo, redo = page.get_by_role("button", name="↶ Undo"), page.get_by_role("button", name="↷ Redo")
    midi = page.locator("#downloads-1 a[href$='.mid']").first
    page.locator("#length input").fill("1")  # a bar by the tiny model: the piece before the duet
    page.locator("#length input").press("Enter")
    page.get_by_role("button", name="Compose", exact=True).click()
    expect(page.locator("#downloads-1 a[href$='.musicxml']").first).to_be_attached(timeout=60_000)
    composed = _midi_notes(page, midi)
    keys.locator("button.connect").click()
    keys.locator("input.bpm").fill(str(BPM))
    keys.locator("input.answer-bars").fill("1")
    keys.locator("button.duet-on").click()
    page.wait_for_function("window.maiaDuet.ready === true", timeout=20_000)
    button = keys.locator("button.your-turn").element_handle()
    for i in range(2):  # each phrase ended with "Your turn, maia", clicked in the page as its last key comes up: a
        # click sent from here could land after the rest that also ends a phrase, on a busy machine (as in the
        # three-turn duet above), and the wait for the phrase's four notes would then see none
        page.evaluate("([notes, button]) => window.__midi.phrase(notes, []).then(() => button.click())",
                      [[list(n) for n in D_MINOR_PHRASE], button])
        until(page, f"window.maiaDuet.turns.length === {i + 1} && window.maiaDuet.turns[{i}].done "
                    "&& !window.maiaDuet.answering", timeout=20_000)
    # (pitch, onset) of each note; the tiny random model may strike a key several times at once: one note in a file
    played = sorted({(n[0], round(n[1], 2)) for n in page.evaluate("window.maiaDuet.notes")})
    keys.locator("button.duet-on").click()  # ■ End the duet
    expect(page.get_by_text("a duet of 2 turns").first).to_be_visible(timeout=30_000)
    expect(undo).to_be_enabled()
    expect(redo).to_be_disabled()

    def shows_the_duet():
        expect(roll.locator("button.tab-sheet")).to_be_enabled(timeout=30_000)
        who = page.evaluate(f"{STATS}.notes().map((n) => n[4])")
        assert who.count(0) == 2 * len(D_MINOR_PHRASE) and who.count(1) == len(played) - who.count(0)
        assert _midi_notes(page, midi) == played  # both players' notes, note for note

    shows_the_duet()
    roll.locator("button.tab-sheet").click()
    expect(roll.locator(".sheet svg").first).to_be_visible()
    assert roll.locator(".sheet g.note").count() > 0
    for suffix in (".wav", ".musicxml", "-roll.png"):
        expect(page.locator(f"#downloads-1 a[href$='{suffix}']").first).to_be_attached()
    undo.click()  # back to the piece composed before the duet
    expect(page.get_by_text("piece 1 of 2").first).to_be_visible(timeout=30_000)
    assert _midi_notes(page, midi) == composed and page.evaluate(f"{STATS}.notes().every((n) => n[4] === 1)")
    redo.click()
    expect(page.get_by_text("piece 2 of 2").first).to_be_visible(timeout=30_000)
    shows_the_duet()
