"""The playground as a user feels it, against bare sampling: app.py in a subprocess, driven through
gradio_client and through Debian's chromium (Playwright).

Usage: .venv/bin/python -m bench.app_latency [--tokens 1024] [--runs 3] [--model-dir DIR] [--no-browser]
                                             [--sampling process,thread]

1. The model: the shipped default (assets/models/piano) or --model-dir's default model.
2. Bare: maia.generate in this process, one torch thread (what the app gives each of its 2 concurrent
   requests on 2 cores), --tokens new tokens for the Lacrimosa prompt and for no prompt (composer only):
   tokens per second, the model already loaded.
3. The request: the same prompt, model, seed and length through gradio_client's /generate on app.py
   (127.0.0.1, free port): tokens per second from submit to the finished music (the update with the
   MIDI, the WAV and the roll's last audio), and its ratio to bare sampling (goal: at least 0.9); then
   the seconds the sheet music takes after it (MusicXML, PNG roll, Verovio), the request's last update.
4. The browser: the page in chromium, Compose with no prompt: the time from the click to the first note
   drawn on the roll (goal: 0.5 s), the time to draw one update on the canvas (median and 95th
   percentile, measured in the page), updates, audio chunks and gaps.
Medians of --runs runs; runs alternate bare and request, so that a busy machine weighs on both alike.
--sampling serves one app per mode of MAIA_SAMPLING (maia/limits.py) and alternates their requests too:
"process" (the default) samples in sampler processes (maia/sampler.py), "thread" in the server's own.
The client leaves the files as links until the music is done, as the page does (download_files=False);
--client-downloads also times gradio_client's default, which fetches every update's MIDI as it arrives.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

from bench.appserver import ROOT, pick_model, serve
from bench.webmidi import CHROMIUM, CHROMIUM_ARGS
from maia.checkpoint import load_model

COMPOSER = "mozart"
SEED = 1
LACRIMOSA = ROOT / "assets" / "prompts" / "lacrimosa.mid"


def bare(root: Path, name: str, prompt: Path | None, tokens: int) -> float:
    """Seconds for maia.generate to sample ``tokens`` (the model loaded, the prompt built)."""
    from maia.encoding import read
    from maia.generate import SamplingConfig, build_prompt, generate

    model, vocab, _ = load_model(root / name)
    p = build_prompt(vocab, COMPOSER, read(prompt, vocab.config) if prompt else None)
    config = SamplingConfig(max_new_tokens=tokens, seed=SEED)
    t = time.perf_counter()
    n = sum(1 for _ in generate(model, p.ids, config, vocab))
    took = time.perf_counter() - t
    assert n == tokens, f"the model ended the piece after {n} tokens; pick another seed"
    return took


def request(client, name: str, prompt: Path | None, tokens: int) -> tuple[float, float, float]:
    """(seconds to the finished music: MIDI and WAV, seconds to the first update, seconds to the sheet
    music: MusicXML, PNG roll and engraving) through /generate."""
    import json

    from gradio_client import handle_file

    t = time.perf_counter()
    job = client.submit(prompt_midi=handle_file(str(prompt)) if prompt else None, composer=COMPOSER, model=name,
                        tokens=tokens, top_k=5, temperature=1.0, seed=SEED, variations=1, api_name="/generate")
    first = music = None
    seen = 0
    while not job.done():
        outs = job.outputs()
        if first is None and outs:
            first = time.perf_counter() - t
        for out in outs[seen:]:
            if music is None and out[0] and json.loads(out[0]).get("done"):
                music = time.perf_counter() - t
        seen = len(outs)
        time.sleep(0.01)  # 10 ms: finer polling costs the client (and so the 2-core machine) CPU
    result = job.result()
    took = time.perf_counter() - t
    assert len(result[1]) == 4, "MIDI, WAV, MusicXML and PNG expected"
    return music if music is not None else took, first if first is not None else took, took


def browser(url: str, tokens: int, runs: int) -> dict:
    """Compose with no prompt in chromium, ``runs`` times: first note after the click, draw times."""
    from playwright.sync_api import expect, sync_playwright

    firsts, draws, updates, gaps, chunks = [], [], [], [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(runs):
                page = b.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.locator("#length-unit input").click()  # the length in tokens (Advanced), not in bars
                page.get_by_role("option", name="tokens", exact=True).click()
                length = page.get_by_label("number input for Length (tokens)")
                length.fill(str(tokens))
                length.press("Enter")
                button = page.get_by_role("button", name="Compose", exact=True)
                button.evaluate("b => b.addEventListener('click', () => { window.maiaClick = performance.now(); })")
                button.click()
                page.wait_for_function("window.maiaLive && window.maiaLive['1'] && window.maiaLive['1'].done === true",
                                       timeout=600_000)
                expect(page.get_by_text("done:")).to_be_visible(timeout=60_000)
                s = page.evaluate("(() => { const s = window.maiaLive['1']; return {first: s.firstNoteMs - window.maiaClick,"
                                  " draws: s.drawMs, updates: s.updates, gaps: s.gaps, chunks: s.chunks}; })()")
                firsts.append(s["first"] / 1000)
                draws += s["draws"]
                updates.append(s["updates"])
                gaps.append(s["gaps"])
                chunks.append(s["chunks"])
                page.close()
        finally:
            b.close()
    draws.sort()
    return {"first": statistics.median(firsts), "draw_median": statistics.median(draws),
            "draw_p95": draws[int(0.95 * (len(draws) - 1))], "updates": statistics.median(updates),
            "gaps": max(gaps), "chunks": statistics.median(chunks)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model-dir", help="a models folder (default: the shipped assets/models)")
    ap.add_argument("--no-browser", action="store_true", help="skip the chromium measurements")
    ap.add_argument("--sampling", default="process", help="MAIA_SAMPLING modes to serve side by side, e.g. process,thread")
    ap.add_argument("--client-downloads", action="store_true",
                    help="also time a gradio_client that downloads every update's files (its default)")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # as the app gives each request on 2 cores
    root, name = pick_model(a.model_dir)
    cases = [("Lacrimosa prompt", LACRIMOSA), ("no prompt (composer only)", None)]
    print(f"# model {name} from {root.name}/; {a.tokens} new tokens, seed {SEED}; {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}; medians of {a.runs} runs")
    modes = a.sampling.split(",")
    variants = [(m, False) for m in modes] + ([(m, True) for m in modes] if a.client_downloads else [])
    log = ROOT / "bench" / "results" / "app_latency.log" if (ROOT / "bench" / "results").is_dir() else None
    with contextlib.ExitStack() as stack:
        from gradio_client import Client

        clients, urls = {}, {}
        for mode in modes:
            urls[mode], _pid = stack.enter_context(serve(root, log, extra_env={"MAIA_SAMPLING": mode}))
        for mode, downloads in variants:
            # download_files=False: the files stay links until asked for, as on the page; gradio_client's
            # default fetches every update's MIDI as it comes, one more HTTP request per update
            clients[mode, downloads] = Client(urls[mode], verbose=False, **({} if downloads else {"download_files": False}))
            request(clients[mode, downloads], name, None, 16)  # the server's first request loads what warm_up did not
        print(f"{'request':<28} {'sampling':<8} {'client':<10} {'bare tok/s':>10} {'request tok/s':>13} {'ratio':>6} "
              f"{'first update s':>15} {'+ sheet s':>9}   goal")
        for label, prompt in cases:
            b, r, f, s = [], {v: [] for v in variants}, {v: [] for v in variants}, {v: [] for v in variants}
            for _ in range(a.runs):
                b.append(bare(root, name, prompt, a.tokens))
                for v in variants:
                    music, first, total = request(clients[v], name, prompt, a.tokens)
                    r[v].append(music)
                    f[v].append(first)
                    s[v].append(total - music)
            bare_rate = a.tokens / statistics.median(b)
            for v in variants:
                req_rate = a.tokens / statistics.median(r[v])
                ratio = req_rate / bare_rate
                print(f"{label:<28} {v[0]:<8} {'downloads' if v[1] else 'links':<10} {bare_rate:>10.0f} {req_rate:>13.0f} "
                      f"{ratio:>6.2f} {statistics.median(f[v]):>15.2f} {statistics.median(s[v]):>9.2f}   "
                      f"ratio >= 0.90: {'met' if ratio >= 0.9 else 'MISSED'}")
        for mode in [] if a.no_browser else modes:
            s = browser(urls[mode], a.tokens, a.runs)
            print(f"browser ({mode}), no prompt: first note drawn {s['first']:.2f} s after the click (goal 0.5 s: "
                  f"{'met' if s['first'] <= 0.5 else 'MISSED'}); one update drawn in {s['draw_median']:.1f} ms "
                  f"(median), {s['draw_p95']:.1f} ms (95th percentile); {s['updates']:.0f} updates, "
                  f"{s['chunks']:.0f} audio chunks, {s['gaps']} gaps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
