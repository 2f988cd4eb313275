"""Concurrent users: app.py in a subprocess, N generate calls at once through gradio_client (threads).

Usage: .venv/bin/python -m bench.load [--requests 16] [--tokens 128] [--model-dir DIR] [--json]

Steps:
1. Pick the model: the default model of --model-dir, else of the shipped assets/models; say which.
2. Start app.py on a free port of 127.0.0.1 (MAIA_MODELS_DIR = that folder) and wait until it serves.
3. Submit --requests generate calls at once, each from its own thread, each with its own seed (every
   other one continues the Lacrimosa), while a sampler reads the server's VmRSS from /proc/PID/status
   every 50 ms. Each call must finish within --timeout seconds.
4. Send each request again, alone, one after the other.
5. Check: every call finished; each concurrent result holds the same notes as the same request alone (the
   output is its own seed's, not a neighbour's); no two results share a file on the server.
6. Print latency (p50, p95, max), throughput and the server's memory (before, peak, after); --json prints
   the same as one JSON object. Stop the app by its PID.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.appserver import ROOT, pick_model, serve

LACRIMOSA = ROOT / "assets" / "prompts" / "lacrimosa.mid"


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (VmRSS), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass(frozen=True)
class Request:
    seed: int
    prompt: str | None  # a MIDI file to continue, or None (composer only)
    tokens: int
    composer: str = "mozart"
    model: str = "gpt"


@dataclass
class Result:
    request: Request
    seconds: float
    midi_path: str  # where the server keeps the MIDI it returned
    notes: list  # (onset, duration, pitch, velocity) rows of that MIDI
    status: str


def call(client, req: Request, url: str, timeout: float) -> Result:
    """One generate call, start to finish; the MIDI is fetched and read."""
    from gradio_client import handle_file

    from maia.encoding import read_midi_bytes

    t = time.perf_counter()
    job = client.submit(prompt_midi=handle_file(req.prompt) if req.prompt else None, composer=req.composer,
                        model=req.model, tokens=req.tokens, top_k=5, temperature=1.0, seed=req.seed, variations=1,
                        api_name="/generate")
    values = job.result(timeout=timeout)
    seconds = time.perf_counter() - t
    midi = values[1][0]  # {"path": server path, "url": ...} with download_files=False (values[0]: the live roll)
    with urllib.request.urlopen(midi["url"], timeout=30) as r:
        notes = read_midi_bytes(r.read(), name=midi["path"]).notes.tolist()
    return Result(req, seconds, midi["path"], notes, values[-1])


@dataclass
class Report:
    requests: int
    tokens: int
    tokens_made_p50: int  # new tokens per call: fewer than asked when the model ends the piece
    concurrent_wall_s: float
    throughput_rps: float
    p50_s: float
    p95_s: float
    max_s: float
    alone_p50_s: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    all_completed: bool
    all_match_alone: bool
    distinct_outputs: bool
    problems: list[str] = field(default_factory=list)


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[max(1, math.ceil(q / 100 * len(xs))) - 1]  # nearest rank


def run_load(url: str, pid: int, requests: list[Request], timeout: float = 300) -> Report:
    """Steps 3-5 against a running app: ``requests`` at once, then each alone; the checks."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    peak, stop = [rss_mb(pid)], threading.Event()
    before = peak[0]

    def sample():
        while not stop.is_set():
            peak.append(rss_mb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    problems: list[str] = []
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        futures = [pool.submit(call, client, r, url, timeout) for r in requests]
        together = []
        for r, f in zip(requests, futures, strict=True):
            try:
                together.append(f.result(timeout=timeout + 60))
            except Exception as e:  # a failed or timed-out call is a finding, not a crash of the bench
                problems.append(f"seed {r.seed}: {type(e).__name__}: {e}")
                together.append(None)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    after = rss_mb(pid)
    alone = [call(client, r, url, timeout) for r in requests]  # the same requests, one at a time

    done = [x for x in together if x is not None]
    match = len(done) == len(requests)
    for a, b in zip(together, alone, strict=True):
        if a is not None and a.notes != b.notes:
            match = False
            problems.append(f"seed {a.request.seed}: concurrent result differs from the same request alone")
    paths = [x.midi_path for x in done]
    distinct = len(set(paths)) == len(paths)
    if not distinct:
        problems.append("two results share a server file")
    lat = [x.seconds for x in done] or [float("nan")]
    return Report(
        requests=len(requests), tokens=requests[0].tokens,
        tokens_made_p50=round(statistics.median(int(re.search(r"(\d+)/", x.status).group(1)) for x in alone)),
        concurrent_wall_s=round(wall, 2),
        throughput_rps=round(len(done) / wall, 3), p50_s=round(percentile(lat, 50), 2),
        p95_s=round(percentile(lat, 95), 2), max_s=round(max(lat), 2),
        alone_p50_s=round(statistics.median(x.seconds for x in alone), 2),
        rss_before_mb=round(before), rss_peak_mb=round(max(peak)), rss_after_mb=round(after),
        all_completed=len(done) == len(requests), all_match_alone=match, distinct_outputs=distinct,
        problems=problems,
    )


def make_requests(n: int, tokens: int, prompt: Path | None = LACRIMOSA, model: str = "gpt") -> list[Request]:
    """n requests to ``model``, seeds 1..n, every other one continuing ``prompt``."""
    use = str(prompt) if prompt and prompt.is_file() else None
    return [Request(seed=i + 1, prompt=use if i % 2 == 0 else None, tokens=tokens, model=model) for i in range(n)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128, help="new tokens per request")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one call may take")
    ap.add_argument("--model-dir", help="a models folder; its default model is used (default: the shipped ones)")
    ap.add_argument("--json", action="store_true", help="print the report as one JSON object")
    a = ap.parse_args(argv)

    root, which = pick_model(a.model_dir)  # 1.
    with tempfile.TemporaryDirectory() as tmp, serve(root, Path(tmp) / "app.log") as (url, pid):  # 2.
        report = run_load(url, pid, make_requests(a.requests, a.tokens, model=which), a.timeout)  # 3.-5.
    if a.json:
        print(json.dumps({"model": which, "cpu_cores": os.cpu_count(), **asdict(report)}))
    else:  # 6.
        r = report
        print(f"# model: {which}; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; "
              f"{r.requests} concurrent generate calls of {r.tokens} tokens (half with the Lacrimosa prompt; "
              f"median {r.tokens_made_p50} made before the model ended the piece or the length was reached)")
        print(f"latency (s): p50 {r.p50_s:.2f}, p95 {r.p95_s:.2f}, max {r.max_s:.2f}; the same calls alone: "
              f"p50 {r.alone_p50_s:.2f}")
        print(f"throughput: {r.throughput_rps:.2f} requests/s ({r.requests} in {r.concurrent_wall_s:.1f} s)")
        print(f"server memory (VmRSS, MB): before {r.rss_before_mb:.0f}, peak {r.rss_peak_mb:.0f}, "
              f"after {r.rss_after_mb:.0f}")
        print(f"checks: all completed {r.all_completed}; each result = the same request alone {r.all_match_alone}; "
              f"distinct output files {r.distinct_outputs}")
        for p in r.problems:
            print(f"problem: {p}")
    ok = report.all_completed and report.all_match_alone and report.distinct_outputs
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
