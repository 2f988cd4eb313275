"""Playground latency as a user feels it: app.py in a subprocess, driven through gradio_client.

Usage: .venv/bin/python bench/app_latency.py [--runs 3] [--seconds 30] [--model-dir DIR]

Steps:
1. Pick the model: the shipped default model (assets/models/piano) when it exists, else a random-init GPT of the shipped
   shape (6 layers, 8 heads, d=256) written to a temporary folder; say which.
2. Find how many tokens make --seconds of music: stream the same request (same model, prompt, seed) in
   this process and count tokens until the continuation lasts that long (the app's sampling is
   deterministic, so the app will compose exactly this music).
3. Start app.py on a free port of 127.0.0.1 (MAIA_MODELS_DIR = the model's folder) and wait until it serves.
4. For the Lacrimosa prompt and for no prompt (composer only), --runs times each: submit through
   gradio_client and record the time to the first streamed update and to the finished continuation
   (MIDI, audio, piano roll, MusicXML). Print the medians against the goals (first update <= 1 s; 30 s of
   music <= 10 s on 2 CPU cores).
5. Stop the app by its PID.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import maia
sys.path.append(str(ROOT / "bench"))  # last, so that bench/training.py never shadows the training package

from appserver import serve  # noqa: E402

from maia.checkpoint import DEFAULT_ROOT, default_model, load_model  # noqa: E402

COMPOSER = "mozart"


def pick_model(model_dir: str | None) -> tuple[Path, str]:
    """(models folder whose default model is a GPT, description)."""
    if model_dir:
        return Path(model_dir), f"{default_model(model_dir)} from {model_dir}"
    name = default_model(DEFAULT_ROOT)
    if name is not None:
        return DEFAULT_ROOT, f"the shipped assets/models/{name}"
    import torch

    from maia.checkpoint import save_model
    from maia.models import GPT, GPTConfig
    from maia.vocab import Vocab

    torch.manual_seed(0)
    vocab = Vocab(composers=("bach", "beethoven", "chopin", "haydn", "joplin", "mozart"))
    model = GPT(GPTConfig(vocab_size=len(vocab))).eval()
    root = Path(tempfile.mkdtemp(prefix="maia-bench-models-"))
    save_model(root / "gpt", model, "gpt", model.config, vocab)
    return root, "a random-init GPT of the shipped shape (no trained model installed)"


def tokens_for(root: Path, prompt: Path | None, seconds: float) -> tuple[int, int]:
    """(seed, new tokens) such that the app's continuation (same model, prompt, seed) lasts `seconds`:
    the first seed from 1 on whose music gets that long before the model ends the piece."""
    from maia.encoding import read
    from maia.generate import SamplingConfig, build_prompt, generate, ids_to_piece, max_tokens_cap

    model, vocab, _ = load_model(root / default_model(root))
    p = build_prompt(vocab, COMPOSER, read(prompt, vocab.config) if prompt else None)
    start = ids_to_piece(p.ids, vocab, p).end_step if len(p.ids) > 2 else 0
    for seed in range(1, 50):
        ids = list(p.ids)
        config = SamplingConfig(max_new_tokens=max_tokens_cap(), seed=seed)
        for n, step in enumerate(generate(model, p.ids, config, vocab), 1):
            ids.append(step[0])
            if n % 8 == 0:
                piece = ids_to_piece(ids, vocab, p)
                if (piece.end_step - start) * piece.seconds_per_step >= seconds:
                    return seed, n
    raise RuntimeError(f"no seed gave {seconds} s of music")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0, help="music to compose per request")
    ap.add_argument("--model-dir", help="a folder holding a 'gpt' model (default: shipped, else random-init)")
    a = ap.parse_args(argv)

    # 1-2. the model, and how many tokens make the music long enough
    import torch

    torch.set_num_threads(1)  # as the app does on 2 cores with 2 concurrent requests
    root, which = pick_model(a.model_dir)
    lacrimosa = ROOT / "assets" / "prompts" / "lacrimosa.mid"
    cases = [("Lacrimosa prompt", lacrimosa), ("no prompt (composer only)", None)]
    plan = {name: tokens_for(root, prompt, a.seconds) for name, prompt in cases}  # name -> (seed, tokens)

    # 3. the app (bench/appserver.py: a free port of 127.0.0.1, stopped by its PID at the end)
    with serve(root) as (url, _pid):
        from gradio_client import Client, handle_file

        client = Client(url, verbose=False)

        # 4. the runs
        print(f"# model: {which}; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; "
              f"median of {a.runs} runs; ~{a.seconds:.0f} s of music per request")
        print(f"{'request':<28} {'seed':>4} {'tokens':>6} {'first update (s)':>17} {'finished (s)':>13} "
              f"{'updates':>8}   goal")
        for name, prompt in cases:
            seed, tokens = plan[name]
            first, done, updates = [], [], []
            for _ in range(a.runs):
                t = time.perf_counter()
                job = client.submit(prompt_midi=handle_file(str(prompt)) if prompt else None, composer=COMPOSER,
                                    model=default_model(root), tokens=tokens, top_k=5, temperature=1.0, seed=seed,
                                    variations=1, api_name="/generate")
                t_first = None
                while not job.done():
                    if t_first is None and job.outputs():
                        t_first = time.perf_counter() - t
                    time.sleep(0.005)
                result = job.result()
                done.append(time.perf_counter() - t)
                first.append(t_first if t_first is not None else done[-1])
                updates.append(len(job.outputs()))
                assert result[0] and result[1] and result[2], "MIDI, audio and piano roll expected"
            f, d = statistics.median(first), statistics.median(done)
            print(f"{name:<28} {seed:>4} {tokens:>6} {f:>17.2f} {d:>13.2f} {statistics.median(updates):>8.0f}   "
                  f"first <= 1 s: {'met' if f <= 1 else 'MISSED'}; {a.seconds:.0f} s of music <= 10 s: "
                  f"{'met' if d <= 10 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
