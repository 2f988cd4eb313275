"""A Web MIDI stand-in for Debian's chromium, shared by the browser tests and ``bench.duet_latency``.

    page = midi_page(browser.new_context())    # STAND_IN runs before each load: navigator.requestMIDIAccess is ours
    page, keys = open_instrument(page, url, bpm=120)

One input, "Test keyboard", whose messages the page receives, and one output, "Test synth", that records what
it is sent (``window.__midi.sent``: [bytes, time], the time the page stamped or performance.now()). In the page:

- ``__midi.play(bytes, at)``: a message now, stamped ``at`` (performance.now() ms; default now), as a MIDI
  keyboard stamps its messages;
- ``__midi.at(bytes, at)``: the same message delivered when its time comes;
- ``__midi.phrase(notes, extra)``: [pitch, onset s, duration s, velocity] notes (and [bytes, at s] messages)
  played in real time from now; a promise that resolves after the last;
- ``__midi.plug()``: a second keyboard is plugged in (``onstatechange``).
"""

from __future__ import annotations

import os

# Debian's chromium, headless: its headless shell (package chromium-headless-shell, the build Playwright itself runs
# for headless pages) where installed, else the whole browser (package chromium). The shell renders the same Blink
# page without the browser around it: 25% less CPU a page load (5.7-5.9 core-seconds for 5 loads, against 7.6-8.1)
# and 16% less for the browser tests (docs/testing.md, Run 14); scripts/sysdeps.sh installs it.
HEADLESS_SHELL, BROWSER = "/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium"
CHROMIUM = next((path for path in (HEADLESS_SHELL, BROWSER) if os.access(path, os.X_OK)), HEADLESS_SHELL)
MISSING = "Debian's chromium is not installed (apt-get install chromium-headless-shell)"
# as a user's browser runs it: no first-run, no background networking (the sandbox's network is closed); audio
# may start without a click in the page, as it does for a user after clicking Compose
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]

STAND_IN = """
window.__midi = { sent: [] };
navigator.requestMIDIAccess = async () => {
  const input = { id: "in-1", name: "Test keyboard", type: "input", state: "connected", onmidimessage: null };
  const output = { id: "out-1", name: "Test synth", type: "output", state: "connected",
    send(data, at) { window.__midi.sent.push([Array.from(data), at === undefined ? performance.now() : at]); } };
  const deliver = (bytes, at) => input.onmidimessage && input.onmidimessage({ data: new Uint8Array(bytes), timeStamp: at });
  window.__midi.play = (bytes, at = performance.now()) => deliver(bytes, at);
  window.__midi.at = (bytes, at) => setTimeout(() => deliver(bytes, at), Math.max(0, at - performance.now()));
  window.__midi.phrase = (notes, extra = []) => new Promise((done) => {
    const events = [];
    for (const [p, s, d, v] of notes) { events.push([s, [0x90, p, v]]); events.push([s + d, [0x80, p, 0]]); }
    for (const [bytes, at] of extra) events.push([at, bytes]);
    let last = 0;
    for (const [at, bytes] of events) {
      setTimeout(() => deliver(bytes, performance.now()), at * 1000); last = Math.max(last, at);
    }
    setTimeout(done, last * 1000 + 20);
  });
  const access = { inputs: new Map([[input.id, input]]), outputs: new Map([[output.id, output]]), onstatechange: null };
  window.__midi.plug = () => {
    const port = { id: "in-2", name: "Second keyboard", type: "input", state: "connected", onmidimessage: null };
    access.inputs.set(port.id, port);
    if (access.onstatechange) access.onstatechange({ port });
  };
  return access;
};
"""


def midi_page(context):
    """A new page of the Playwright browser context ``context`` whose loads get the stand-in (``STAND_IN``)."""
    page = context.new_page()
    page.add_init_script(STAND_IN)
    return page


def open_instrument(page, url: str, bpm: int | None = None, output: bool = True):
    """``url`` loaded in ``page`` (a page that gets the stand-in: ``midi_page``), with the stand-in connected (and its
    output chosen, the tempo set when given): (page, the instrument's locator)."""
    page.goto(url)
    keys = page.locator("#keys")
    keys.locator(".piano").wait_for()
    keys.locator("button.connect").click()
    if output:
        keys.locator("select.midi-out").select_option("out-1")
    if bpm is not None:
        keys.locator("input.bpm").fill(str(bpm))
    return page, keys
