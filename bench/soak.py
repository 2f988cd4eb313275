"""A long day for the server: app.py on 127.0.0.1 under a bounded mix of requests from a few users at once.

Usage: .venv/bin/python -m bench.soak [--minutes 10] [--users 4] [--tokens 128] [--model-dir DIR] [--json OUT]

Steps:
1. Pick the model (the default of --model-dir, else of the shipped assets/models) and give the server its own
   temp folder (TMPDIR and GRADIO_TEMP_DIR), with MAIA_KEEP_FILES=60 so that its request folders must be swept
   within the run.
2. Start app.py (bench/appserver.py) and warm it up: every user sends one request of each kind, all at once;
   then 12 s at rest: the server's threads and open files then are the baseline for leaks.
3. ``--users`` threads, each with its own gradio_client, send requests one after another until the time is up,
   in turn: a streamed /generate read to its end; a /generate cancelled after its first update (a client that
   goes away); a streamed /generate with the Lacrimosa prompt; a bad upload (text named .mid, which must be
   refused with a message); and /infill of beats 4-8 of the Lacrimosa when the model can fill in the middle.
4. Every 2 s, sample the server's resident memory, threads and open files (/proc/PID), its sampler processes'
   (maia/sampler.py) added in.
5. When the time is up, let the server idle for 12 s, sample again and count its request folders.
6. Print, per minute, the requests done and failed and the latency (p50, p95) of the finished ones, the memory,
   and the verdicts against the goals: no failure a request did not deserve; memory growth under 10% from the
   end of the warm-up (the first quarter of the run, at most a minute) to the end; no more threads or open
   files (sockets apart) at rest at the end than at rest after the warm-up; request folders swept. Stop the
   server by its PID.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.appserver import ROOT, pick_model, serve

LACRIMOSA = ROOT / "assets" / "prompts" / "lacrimosa.mid"
# User u starts with kind u, then goes on in this order: with 4 users, the 4th starts with the bad upload (refused
# at once) and goes straight on to the 5th kind, so even a short run sends every kind.
KINDS = ("stream", "cancel", "lacrimosa", "bad upload", "infill")
REST = 12  # seconds at rest before threads and files are counted: anyio retires a worker thread idle for 10 s
KEEP_FILES = 60  # seconds the server keeps a request's folder in a soak run (MAIA_KEEP_FILES)


@dataclass
class Call:
    kind: str
    start: float  # seconds since the load began
    seconds: float
    outcome: str  # ok | refused (a bad request, refused with a message: deserved) | cancelled | failed
    detail: str = ""


@dataclass
class Sample:
    t: float
    rss_mb: float
    threads: int
    open_files: int  # descriptors of files, pipes and the like
    sockets: int  # network connections: the clients' kept-alive ones come and go with them
    paths: tuple = ()  # what the open files are (not sockets), for naming a leak


def family(pid: int) -> list[int]:
    """``pid`` and its child processes (the server's sampler processes, maia/sampler.py), from /proc."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):  # gone meanwhile
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4, after the (command name)
                    pids.append(int(entry))
    return pids


def proc_sample(pid: int, t: float, children: bool = True) -> Sample:
    """The resident memory, threads, open files and sockets of a process and (``children``) its child
    processes, added up (Linux /proc)."""
    rss, threads, links = 0.0, 0, []
    for p in family(pid) if children else [pid]:
        with contextlib.suppress(OSError):  # a child gone meanwhile
            status = Path(f"/proc/{p}/status").read_text().splitlines()
            value = {line.split(":")[0]: line.split(":")[1].split() for line in status if ":" in line}
            rss += int(value["VmRSS"][0]) / 1024
            threads += int(value["Threads"][0])
            for fd in os.listdir(f"/proc/{p}/fd"):
                with contextlib.suppress(OSError):  # closed meanwhile
                    links.append(os.readlink(f"/proc/{p}/fd/{fd}"))
    sockets = sum(link.startswith("socket:") for link in links)
    files = tuple(sorted(link for link in links if not link.startswith("socket:")))
    return Sample(t, rss, threads, len(files), sockets, files)


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[max(1, math.ceil(q / 100 * len(xs))) - 1] if xs else float("nan")  # nearest rank


CLIENT_TIMEOUT = 60  # seconds for each HTTP call of a client, a cancel's too (httpx's default is 5)


def _client(url: str):
    """A gradio_client for ``url`` that waits CLIENT_TIMEOUT for the server's answers: a server the soak keeps busy on
    every core may take longer than httpx's 5 s to answer a cancel, which is slow, not broken (its time is in the
    latency figures, and a request that never ends still fails)."""
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": CLIENT_TIMEOUT})


def one_call(client, kind: str, model: str, seed: int, tokens: int, bad_file: Path) -> tuple[str, str]:
    """Sends one request of ``kind``; returns (outcome, detail)."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    args = dict(composer="unknown", model=model, tokens=tokens, top_k=5, temperature=1.0, seed=seed, variations=1)
    if kind == "bad upload":
        try:
            client.predict(prompt_midi=handle_file(str(bad_file)), **args, api_name="/generate")
        except AppError as e:
            return ("refused", str(e)[:120]) if "not a MIDI file" in str(e) else ("failed", f"wrong message: {e}")
        return "failed", "a text file was accepted as MIDI"
    if kind == "infill":
        values = client.predict(source=handle_file(str(LACRIMOSA)), from_beat=4, to_beat=8, composer="unknown",
                                model=model, top_k=5, temperature=1.0, seed=seed, api_name="/infill")
        return ("ok", "") if values[-1].startswith("done") else ("failed", values[-1][:120])
    prompt = handle_file(str(LACRIMOSA)) if kind == "lacrimosa" else None
    job = client.submit(prompt_midi=prompt, **args, api_name="/generate")
    if kind == "cancel":
        deadline = time.monotonic() + 60
        while not job.outputs() and not job.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        job.cancel()
        return "cancelled", ""
    values = job.result(timeout=300)
    return ("ok", "") if values[-1].startswith("done") else ("failed", values[-1][:120])


@dataclass
class Report:
    model: str
    minutes: float
    users: int
    tokens: int
    calls: dict = field(default_factory=dict)  # outcome -> count
    by_kind: dict = field(default_factory=dict)  # kind -> {outcome: count}
    per_minute: list = field(default_factory=list)  # {minute, done, failed, p50_s, p95_s, rss_mb, threads, open_files, sockets}
    rss_warm_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_growth: float = 0.0
    threads_warm: int = 0
    threads_end: int = 0
    files_warm: int = 0
    files_end: int = 0
    new_files: list = field(default_factory=list)  # open at rest at the end and not after the warm-up
    request_folders_end: int = 0
    request_folders_bound: int = 0
    keep_files: float = KEEP_FILES
    failures: list = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)


def soak(root: Path, model: str, minutes: float, users: int, tokens: int, log: Path | None = None,
         keep_files: float = KEEP_FILES, rest: float = REST, warm_rounds: int | None = None,
         min_rounds: int = 0) -> Report:
    """Steps 1-5; the report of step 6. ``rest``: the seconds at rest after the warm-up and after the load (a
    shorter rest than REST leaves the warm-up's idle worker threads in both counts). ``warm_rounds``: requests
    each user sends in the warm-up (default: one of every kind; 2 already send every kind once among 4 users,
    since user u starts with kind u). ``min_rounds``: requests each user sends under load even past ``minutes``
    (a short smoke run on a busy machine still sends every kind)."""

    from maia.checkpoint import read_vocab

    fim = read_vocab(root / model).fim
    kinds = [k for k in KINDS if k != "infill" or fim]
    with tempfile.TemporaryDirectory(prefix="maia-soak-") as tmp:
        tmp = Path(tmp)
        bad = tmp / "notes.mid"
        bad.write_text("these are not notes\n")
        server_tmp = tmp / "server"
        server_tmp.mkdir()
        env = {"TMPDIR": str(server_tmp), "GRADIO_TEMP_DIR": str(server_tmp / "gradio"),
               "MAIA_KEEP_FILES": str(keep_files)}
        with serve(root, log, extra_env=env) as (url, pid):
            calls: list[Call] = []
            samples: list[Sample] = []
            lock, stop = threading.Lock(), threading.Event()

            def user(u: int, until: float, rounds: int, record: list[Call], t0: float, at_least: int):
                client = _client(url)
                i = 0
                while i < rounds and (time.monotonic() < until or i < at_least):
                    kind = kinds[(u + i) % len(kinds)]
                    start = time.monotonic()
                    try:
                        outcome, detail = one_call(client, kind, model, 1000 * u + i, tokens, bad)
                    except Exception as e:  # an error the request did not deserve
                        outcome, detail = "failed", f"{type(e).__name__}: {str(e)[:160]}"
                    with lock:
                        record.append(Call(kind, start - t0, time.monotonic() - start, outcome, detail))
                    i += 1

            def together(until: float, rounds: int, record: list[Call], t0: float, at_least: int = 0):
                threads = [threading.Thread(target=user, args=(u, until, rounds, record, t0, at_least), daemon=True)
                           for u in range(users)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=max(0.0, until - time.monotonic()) + 400)

            # Warm-up: every user sends every kind once, at once (the server's worker pools grow to the load and
            # what loads lazily, music21, Verovio, FluidSynth, loads); then at rest: the baseline for leaks.
            warm_calls: list[Call] = []
            together(time.monotonic() + 600, warm_rounds or len(kinds), warm_calls, time.monotonic())
            calls += [c for c in warm_calls if c.outcome == "failed"]
            time.sleep(rest)
            settled = proc_sample(pid, 0.0)
            t0 = time.monotonic()
            end = t0 + minutes * 60

            def sampler():
                while not stop.is_set():
                    samples.append(proc_sample(pid, time.monotonic() - t0))
                    stop.wait(2.0)

            watch = threading.Thread(target=sampler, daemon=True)
            watch.start()
            together(end, 1 << 30, calls, t0, min_rounds)
            stop.set()
            watch.join()
            time.sleep(rest)  # at rest
            rest = proc_sample(pid, time.monotonic() - t0)
            # One more request after the rest sweeps what is older than keep_files: the folders left are the
            # requests that ended within keep_files of it, and its own.
            probe = time.monotonic() - t0
            outcome, detail = one_call(_client(url), "stream", model, 999, tokens, bad)
            if outcome != "ok":
                calls.append(Call("stream", probe, time.monotonic() - t0 - probe, "failed", f"probe: {detail}"))
            requests_dir = server_tmp / "maia-requests"
            folders = len(list(requests_dir.iterdir())) if requests_dir.is_dir() else 0
    return summarise(model, minutes, users, tokens, calls, samples, rest, folders, keep_files, settled, probe)


def summarise(model, minutes, users, tokens, calls: list[Call], samples: list[Sample], rest: Sample,
              folders: int, keep_files: float, settled: Sample, probe: float) -> Report:
    r = Report(model, minutes, users, tokens)
    for c in calls:
        r.calls[c.outcome] = r.calls.get(c.outcome, 0) + 1
        r.by_kind.setdefault(c.kind, {})
        r.by_kind[c.kind][c.outcome] = r.by_kind[c.kind].get(c.outcome, 0) + 1
    r.failures = [f"{c.kind} at {c.start:.0f} s: {c.detail}" for c in calls if c.outcome == "failed"]
    for m in range(math.ceil(minutes)):
        mine = [c for c in calls if m * 60 <= c.start < (m + 1) * 60]
        lat = [c.seconds for c in mine if c.outcome == "ok"]
        here = [s for s in samples if m * 60 <= s.t < (m + 1) * 60] or samples[-1:]
        r.per_minute.append({"minute": m + 1, "done": len([c for c in mine if c.outcome != "failed"]),
                             "failed": len(mine) - len([c for c in mine if c.outcome != "failed"]),
                             "p50_s": round(percentile(lat, 50), 2), "p95_s": round(percentile(lat, 95), 2),
                             "rss_mb": round(max(s.rss_mb for s in here)), "threads": max(s.threads for s in here),
                             "open_files": max(s.open_files for s in here), "sockets": max(s.sockets for s in here)})
    warm = min(60.0, minutes * 60 / 4)  # the end of the warm-up
    warm_samples = [s for s in samples if s.t <= warm] or samples[:1]
    last = [s for s in samples if s.t >= minutes * 60 - 60] or samples[-1:]
    r.rss_warm_mb = round(statistics.median(s.rss_mb for s in warm_samples[-5:]), 1)
    r.rss_end_mb = round(statistics.median(s.rss_mb for s in last[-5:]), 1)
    r.rss_growth = round(r.rss_end_mb / r.rss_warm_mb - 1, 4)
    r.threads_warm, r.files_warm = settled.threads, settled.open_files  # both at rest: after warm-up, at the end
    r.threads_end, r.files_end = rest.threads, rest.open_files
    r.new_files = sorted((collections.Counter(rest.paths) - collections.Counter(settled.paths)).elements())
    # Folders younger than keep_files stay; older ones must be gone when the probe (the request sent after the
    # rest, at ``probe`` s) sweeps: at most the requests that ended in the keep_files seconds before it, and its own.
    recent = len([c for c in calls if c.start + c.seconds >= probe - keep_files and c.kind != "bad upload"])
    r.keep_files = keep_files
    r.request_folders_end, r.request_folders_bound = folders, recent + 1
    r.verdicts = {
        "no undeserved failure": not r.failures,
        "memory growth under 10% after warm-up": r.rss_growth < 0.10,
        "no leaked threads": r.threads_end <= r.threads_warm,
        "no leaked open files": r.files_end <= r.files_warm,
        "request folders swept": folders <= r.request_folders_bound,
    }
    return r


def print_report(r: Report) -> None:
    print(f"# soak: model {r.model}, {r.minutes:g} min, {r.users} users, {r.tokens} tokens per request; "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    print(f"calls: {sum(r.calls.values())} ({', '.join(f'{k} {v}' for k, v in sorted(r.calls.items()))})")
    for kind, counts in r.by_kind.items():
        print(f"  {kind}: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}")
    print("| minute | done | failed | p50 (s) | p95 (s) | RSS (MB) | threads | open files | sockets |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in r.per_minute:
        print(f"| {m['minute']} | {m['done']} | {m['failed']} | {m['p50_s']} | {m['p95_s']} | {m['rss_mb']} | "
              f"{m['threads']} | {m['open_files']} | {m['sockets']} |")
    print(f"memory: {r.rss_warm_mb:.0f} MB after warm-up, {r.rss_end_mb:.0f} MB at the end ({r.rss_growth:+.1%})")
    print(f"at rest after the warm-up and at the end: threads {r.threads_warm} and {r.threads_end}, open files "
          f"(sockets apart) {r.files_warm} and {r.files_end}")
    if r.new_files:
        print(f"open at the end and not after the warm-up: {', '.join(r.new_files)}")
    print(f"request folders at the end: {r.request_folders_end} (at most {r.request_folders_bound} may be younger "
          f"than MAIA_KEEP_FILES={r.keep_files:g} s)")
    for name, ok in r.verdicts.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    for f in r.failures:
        print(f"failure: {f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--users", type=int, default=4, help="clients sending requests at once")
    ap.add_argument("--tokens", type=int, default=128, help="new tokens per generate request")
    ap.add_argument("--model-dir", help="a models folder; its default model is used (default: the shipped ones)")
    ap.add_argument("--json", help="also write the report here as JSON")
    a = ap.parse_args(argv)

    root, model = pick_model(a.model_dir)
    r = soak(root, model, a.minutes, a.users, a.tokens)
    print_report(r)
    if a.json:
        Path(a.json).write_text(json.dumps(asdict(r), indent=1))
    return 0 if all(r.verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
