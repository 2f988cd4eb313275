"""The duet's reaction time, as a player feels it: app.py in a subprocess, the page in Debian's chromium, a
stand-in Web MIDI keyboard playing phrases, maia answering each.

Usage: .venv/bin/python -m bench.duet_latency [--turns 20] [--bars 2] [--bpm 120] [--rest 1] [--model-dir DIR]

1. The model: the shipped default (assets/models/piano) or --model-dir's default model; app.py serves it on a
   free port of 127.0.0.1 as it serves a user (its defaults: 2 concurrent requests, a torch thread each).
2. The page: Duet on, a rest of --rest beats ends a phrase, answers of --bars bars at --bpm. The stand-in
   keyboard (bench/webmidi.py, injected before the page loads, as tests/test_duet.py does) plays --turns phrases
   of 4 to 8 notes (a seeded random walk in D minor, in eighths and quarters), each after maia's answer ended.
3. Measured in the page with performance.now() (window.maiaDuet.turns): from the moment the page detected
   the phrase's end (and sent it) to the moment maia's first note sounds (its start on the Web Audio clock
   and MIDI out's timestamp: the beat it was scheduled on, or its arrival if it came after that beat). Goal:
   p95 <= 300 ms. Beside it, the server's part: detection to the first note's event arriving in the page.
   The page sends a phrase LEAD (250 ms, maia/web/keys.js) before the beat maia comes in on: a first note
   that arrives earlier waits for the beat, so the measured latency is at least the lead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

from bench.appserver import pick_model, serve
from bench.webmidi import CHROMIUM, CHROMIUM_ARGS, MISSING, midi_page, open_instrument

GOAL_MS = 300.0
D_MINOR = [50, 52, 53, 55, 57, 58, 61, 62, 64, 65, 67, 69, 70, 73, 74, 76, 77]


def phrase(rng: random.Random, bpm: float) -> list[list]:
    """4 to 8 notes, a random walk on D minor from around D4, in eighths and quarters (seconds at ``bpm``)."""
    beat, t, i, out = 60.0 / bpm, 0.0, 7, []
    for _ in range(rng.randint(4, 8)):
        i = max(0, min(len(D_MINOR) - 1, i + rng.choice([-2, -1, 1, 2])))
        length = rng.choice([0.5, 0.5, 1.0]) * beat
        out.append([D_MINOR[i], round(t, 3), round(0.85 * length, 3), rng.randint(60, 110)])
        t += length
    return out


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# The transport alone, from the page: one dialogue through the route, one through Gradio's queue (the same
# phrases, turn by turn alternately); per turn, the ms from sending the phrase to maia's first note-on arriving.
TRANSPORTS = """async ({ phrases, bars, bpm, rest, model, composer }) => {
  const base = location.href.split(/[?#]/)[0], beat = 60 / bpm;
  const post = (path, body) => fetch(new URL(path, base), { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" } });
  async function* lines(response, sse) { // the body's lines as they come (for SSE: the data lines' JSON values)
    const reader = response.body.getReader(), text = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += text.decode(value || new Uint8Array(), { stream: !done });
      let nl;
      while ((nl = buffer.indexOf("\\n")) >= 0) {
        const line = buffer.slice(0, nl); buffer = buffer.slice(nl + 1);
        if (!sse && line.trim()) yield JSON.parse(line);
        if (sse && line.startsWith("data: ")) { const data = JSON.parse(line.slice(6)); if (Array.isArray(data)) yield JSON.parse(data[0]); }
      }
      if (done) return;
    }
  }
  const turn = {
    async route(message) { return lines(await post("maia/duet/turn", message), false); },
    async gradio(message) {
      const { event_id } = await (await post("gradio_api/call/duet_turn", { data: [JSON.stringify(message)] })).json();
      return lines(await fetch(new URL(`gradio_api/call/duet_turn/${event_id}`, base)), true);
    },
  };
  const out = { route: [], gradio: [] }, end = {};
  for (const how of ["route", "gradio"]) {
    const r = await (await post("maia/duet/start", { model, composer, bpm, seed: 0 })).json();
    end[how] = { duet: r.duet, at: 0 };
  }
  for (const notes of phrases) {
    for (const how of ["route", "gradio"]) {
      const at = end[how].at, last = Math.max(...notes.map((n) => n[1] + n[2]));
      const message = { duet: end[how].duet, notes: notes.map(([p, s, d, v]) => [p, at + s, at + s + d, v]),
        beat: Math.ceil((at + last + rest * beat) / beat), bars };
      const t0 = performance.now();
      let first = null;
      for await (const m of await turn[how](message)) {
        if (m.type === "on" && first === null) first = performance.now() - t0;
        if (m.type === "error") throw new Error(m.message);
        if (m.type === "done") end[how].at = m.end;
      }
      out[how].push(first);
    }
  }
  return out;
}"""


def transports(page, phrases: list, bars: int, bpm: int, rest: int, model: str) -> dict[str, list[float]]:
    """ms from sending each phrase to its answer's first note-on arriving, through the route and through Gradio."""
    composer = page.evaluate("document.querySelector('input[aria-label=\"Composer\"]')?.value || 'unknown'")
    return page.evaluate(TRANSPORTS, {"phrases": phrases, "bars": bars, "bpm": bpm, "rest": rest, "model": model,
                                      "composer": composer.lower().replace(" ", "_")})


def duet(url: str, turns: int, bars: int, bpm: int, rest: int, seed: int, model: str) -> tuple[list[dict], dict]:
    """Plays ``turns`` phrases on the page at ``url``: window.maiaDuet's turns; then the transports' figures."""
    from playwright.sync_api import sync_playwright

    rng = random.Random(seed)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page, keys = open_instrument(midi_page(context), url, bpm, output=False)
            keys.locator("select.rest").select_option(str(rest))
            keys.locator("input.answer-bars").fill(str(bars))
            keys.locator("button.duet-on").click()
            page.wait_for_function("window.maiaDuet.ready === true", timeout=60_000)
            phrases = [phrase(rng, bpm) for _ in range(turns)]
            for i in range(turns):
                page.evaluate(f"window.__midi.phrase({json.dumps(phrases[i])})")
                page.wait_for_function(f"window.maiaDuet.turns.length === {i + 1} && window.maiaDuet.turns[{i}].done"
                                       " && !window.maiaDuet.answering", timeout=120_000)
                print(f"  turn {i + 1}/{turns}", end="\r", file=sys.stderr, flush=True)
            errors = page.evaluate("window.maiaDuet.errors")
            if errors:
                raise SystemExit(f"the duet refused a turn: {errors[0]}")
            played = page.evaluate("window.maiaDuet.turns.map(({played, ...t}) => t)")
            keys.locator("button.duet-on").click()  # the duet ends (its files are written, as for a user)
            print("  the transports: the route and Gradio's queue", end="\r", file=sys.stderr, flush=True)
            return played, transports(page, phrases, bars, bpm, rest, model)
        finally:
            browser.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--bars", type=int, default=2, help="the length of maia's answers (1..8)")
    ap.add_argument("--bpm", type=int, default=120)
    ap.add_argument("--rest", type=int, default=1, choices=[1, 2, 4], help="beats of rest that end a phrase")
    ap.add_argument("--seed", type=int, default=0, help="the phrases' random walk")
    ap.add_argument("--model-dir", help="a models folder (default: the shipped assets/models)")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(MISSING)
    root, name = pick_model(args.model_dir)
    load = os.getloadavg()[0]
    log = Path(tempfile.mkdtemp(prefix="maia-duet-bench-")) / "app.log"
    with serve(root, log) as (url, _pid):
        turns, paths = duet(url, args.turns, args.bars, args.bpm, args.rest, args.seed, name)
    print(file=sys.stderr)
    sounds = [t["first"] - t["detected"] for t in turns]
    arrives = [t["arrived"] - t["detected"] for t in turns]
    prompts = [t["reply"]["prompt"] for t in turns]
    reused = [t["reply"]["reused"] for t in turns]
    shown = os.path.relpath(root) if not os.path.relpath(root).startswith("..") else root  # no machine path
    print(f"duet latency: model {name} ({shown}), {len(turns)} turns, answers of {args.bars} bars at {args.bpm} qpm, "
          f"a rest of {args.rest} beat(s) ends a phrase; chromium, app.py on 127.0.0.1; {os.cpu_count()} CPU cores, "
          f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'measure (ms, from the phrase end detected)':46} {'p50':>7} {'p95':>7} {'max':>7}  goal")
    for label, xs, goal in [("maia's first note sounds", sounds, f"p95 <= {GOAL_MS:.0f} ms: "
                             f"{'met' if percentile(sounds, 0.95) <= GOAL_MS else 'NOT met'}"),
                            ("its event arrives in the page (server's part)", arrives, "")]:
        print(f"{label:46} {statistics.median(xs):7.1f} {percentile(xs, 0.95):7.1f} {max(xs):7.1f}  {goal}")
    route, gradio = paths["route"], paths["gradio"]
    print(f"\nthe transport alone ({len(route)} turns each, alternating; ms from sending the phrase to the first note-on "
          "arriving in the page)")
    print(f"{'path':46} {'p50':>7} {'p95':>7} {'max':>7}  vs the route (p50, p95)")
    for label, xs in [("POST /maia/duet/turn, streamed (the page's)", route),
                      ("Gradio's queue: /gradio_api/call/duet_turn", gradio)]:
        print(f"{label:46} {statistics.median(xs):7.1f} {percentile(xs, 0.95):7.1f} {max(xs):7.1f}  "
              f"{statistics.median(xs) / statistics.median(route):.2f}x, "
              f"{percentile(xs, 0.95) / percentile(route, 0.95):.2f}x")
    late = sum(t["first"] - t["at"] > 1 for t in turns)
    print(f"late first notes (after their beat): {late} "
          f"of {len(turns)}; prompt tokens per turn: median {statistics.median(prompts):.0f}, max {max(prompts)}; "
          f"of them already in the KV cache: median {statistics.median(reused):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
