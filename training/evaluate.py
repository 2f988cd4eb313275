"""Score a trained model on the held-out pieces of its corpus, next to an n-gram baseline.

Usage:
    python -m training.evaluate --model runs/gpt [--data data/music21] [--continuations 8] [--tokens 512]

Steps:
  1. load the model folder and the corpus it was trained on (config.json's data.data_dir, or --data);
  2. sliding-window NLL on every held-out piece: windows of the model's context (block_size; the LSTM's
     training seq_len) every ``stride`` tokens (half a window by default), each window starting with the
     piece's composer token like the training windows; every token after the composer token is scored
     exactly once: the first window scores all its tokens, each later one only those past the end of the
     window before it (which then have at least ``window - stride`` tokens of context);
  3. the same for an interpolated modified Kneser-Ney 5-gram model (training/ngram_lm.py) counted on the
     same training split in all 12 keys (``--ngram-as-written`` for the pieces as written);
  4. bits per token and bits per note (total bits / notes: comparable across tokenisations);
  5. musical statistics (maia/metrics.py) of N continuations sampled with maia.generate from the first
     ``--prompt-tokens`` tokens of N held-out pieces spread over the split, against the real continuations
     of the same prompts (the same number of tokens), with their overlapping areas, and the pitch-class
     overlap of each continuation with the real continuation of its own prompt;
  6. print the tables, write MODEL/eval.json and put bits_per_note into MODEL/config.json's metrics.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from maia import metrics
from maia.checkpoint import CONFIG, load_model, read_config
from maia.compose import Composition
from maia.encoding import decode_ids
from maia.errors import MaiaError
from maia.generate import Prompt, SamplingConfig, ids_to_piece, time_steps
from maia.scoring import bits_by_kind, model_window, remap_ids, sliding_window_bits
from maia.vocab import Vocab
from training.data import Corpus
from training.ngram_lm import NGramLM

LN2 = math.log(2)


def fit_ngram(corpus: Corpus, order: int = 5, transpose: bool = True) -> NGramLM:
    """The baseline, counted on the corpus's training split (in 12 keys when ``transpose``)."""
    return NGramLM(len(corpus.vocab), order, corpus.vocab.pad_id).fit(corpus.pieces("train"), corpus.vocab, transpose)


def piece_tempo(ids: np.ndarray, entry: dict, vocab: Vocab) -> float:
    """The tempo a prepared piece was read with, recovered from its index entry's duration in seconds
    (index.json keeps seconds, not the tempo); 120 qpm when that is not possible."""
    end = decode_ids(ids, vocab).end_step
    if not entry.get("seconds") or not end:
        return 120.0
    return float(np.clip(60.0 * end / (entry["seconds"] * vocab.config.steps_per_quarter), 10.0, 1000.0))


def continuation(full_ids, prompt: Prompt, vocab: Vocab):
    """The notes of prompt + continuation that begin after the prompt, moved to start at step 0."""
    piece = ids_to_piece(full_ids, vocab, prompt)
    notes = piece.notes[piece.notes[:, 0] >= prompt.steps].copy()
    notes[:, 0] -= prompt.steps
    piece.notes = notes
    return piece


def music_statistics(model, vocab: Vocab, pieces: list[np.ndarray], entries: list[dict], n: int, tokens: int,
                     prompt_tokens: int = 128, sampling: SamplingConfig | None = None) -> dict:
    """Musical statistics of ``n`` sampled continuations of ``tokens`` tokens after the first ``prompt_tokens``
    of held-out pieces, each with its own seed, against the real continuations of the same prompts. The prompts
    are spread evenly over the held-out pieces (the index is sorted by composer: the first eight of the piano
    corpus are half Bach), and the reference is those pieces' own continuations: all 81 pieces against
    8 prompts would measure which pieces were drawn as much as the model."""
    usable = [(p, e) for p, e in zip(pieces, entries, strict=True) if len(p) > prompt_tokens + 8]
    if not usable or n <= 0:
        return {}
    chosen = sorted({round(k * len(usable) / n) % len(usable) for k in range(n)})  # n spread (all, if fewer)
    prompts = []
    reference = []
    for p, e in (usable[i] for i in chosen):
        head = [int(i) for i in p[:prompt_tokens]]
        prompt = Prompt(head, e["composer"], e.get("tempo") or piece_tempo(p, e, vocab), None, time_steps(head, vocab))
        prompts.append(prompt)
        reference.append(continuation(p[: prompt_tokens + tokens], prompt, vocab))
    sampling = sampling or SamplingConfig()
    generated = []
    for k in tqdm(range(n), desc="continuations", leave=False):
        prompt = prompts[k % len(prompts)]
        cfg = replace(sampling, max_new_tokens=tokens, seed=(sampling.seed or 0) + k, variations=1)
        (ids,) = Composition.continuation(model, vocab, prompt, cfg).sample().rows
        generated.append(continuation(ids, prompt, vocab))
    out = metrics.compare(generated, reference)
    # Keys differ from piece to piece, so the pooled pitch classes of the continuations and of the real ones
    # differ even for a perfect model; pairing each continuation with the real one of its prompt
    # asks the sharper question: does the model stay in the prompt's key?
    pairs = [metrics.histogram_overlap(metrics.pitch_class_histogram(g), metrics.pitch_class_histogram(reference[k % len(prompts)]))
             for k, g in enumerate(generated)]
    out["pitch_class"]["paired_overlap"] = float(np.nanmean(pairs)) if len(generated) else float("nan")
    # Does the continuation keep the prompt's key? The same figures for the real continuations say how
    # often real music does (it modulates), which is the bar a model should meet, not 100%.
    prompt_pieces = [ids_to_piece(p.ids, vocab, p) for p in prompts]
    gen_corr = [metrics.pitch_class_correlation(prompt_pieces[k % len(prompts)], g) for k, g in enumerate(generated)]
    real_corr = [metrics.pitch_class_correlation(pp, r) for pp, r in zip(prompt_pieces, reference, strict=True)]
    gen_key = [metrics.same_key_or_relative(metrics.estimate_key(prompt_pieces[k % len(prompts)]), metrics.estimate_key(g))
               for k, g in enumerate(generated)]
    real_key = [metrics.same_key_or_relative(metrics.estimate_key(pp), metrics.estimate_key(r))
                for pp, r in zip(prompt_pieces, reference, strict=True)]
    out["key"] = {"pc_correlation": {"generated": float(np.nanmean(gen_corr)), "reference": float(np.nanmean(real_corr))},
                  "key_agreement": {"generated": float(np.mean(gen_key)), "reference": float(np.mean(real_key))}}
    out["settings"] = {"continuations": n, "tokens": tokens, "prompt_tokens": prompt_tokens,
                       "reference_pieces": len(reference), "top_k": sampling.top_k,
                       "temperature": sampling.temperature, "seed": sampling.seed}
    return out


def evaluate(model_dir: str | Path, data_dir: str | Path | None = None, continuations: int = 8, tokens: int = 512,
             prompt_tokens: int = 128, stride: int | None = None, batch_size: int = 16, ngram_order: int = 5,
             ngram_transpose: bool = True, sampling: SamplingConfig | None = None, device: str = "cpu",
             write: bool = True) -> dict:
    """Everything the module docstring lists; returns the eval.json dict (also written to model_dir, and the
    bits into its config.json's metrics, unless ``write`` is False: a trial with other settings)."""
    model_dir = Path(model_dir)
    model, vocab, cfg = load_model(model_dir, device)
    data_dir = Path(data_dir or cfg.get("data", {}).get("data_dir") or "data/music21")
    corpus = Corpus.load(data_dir)
    base_pieces, entries = corpus.pieces("valid"), corpus.entries("valid")
    if not base_pieces:
        raise MaiaError(f"{data_dir}: no held-out pieces")
    # the model's vocabulary may add fill-in-the-middle markers, merges or other composers to the corpus's
    pieces = [remap_ids(p, corpus.vocab, vocab) for p in base_pieces]
    notes = sum(e["notes"] for e in entries)
    window = model_window(model, cfg)
    stride = stride or max(1, window // 2)

    t0 = time.time()
    bits = sliding_window_bits(model, pieces, window, stride, batch_size, device, vocab.pad_id)
    t_model = time.time() - t0
    t0 = time.time()
    lm = fit_ngram(corpus, ngram_order, ngram_transpose)
    ngram_bits, _ = lm.total_bits(base_pieces)
    t_ngram = time.time() - t0
    targets = np.concatenate([p[1:] for p in pieces])

    result = {
        "model": str(model_dir), "kind": cfg["kind"], "data_dir": str(data_dir),
        "step": cfg.get("training", {}).get("step"),
        "pieces": len(pieces), "tokens": len(bits), "notes": notes,
        "window": window, "stride": stride,
        "bits_per_token": float(bits.sum() / len(bits)), "bits_per_note": float(bits.sum() / max(notes, 1)),
        "by_kind": bits_by_kind(bits, targets, vocab, notes),
        "ngram_order": ngram_order, "ngram_transposed": ngram_transpose,
        "ngram_bits_per_token": ngram_bits / sum(len(p) - 1 for p in base_pieces),
        "ngram_bits_per_note": ngram_bits / max(notes, 1),
        "seconds": {"model": round(t_model, 1), "ngram": round(t_ngram, 1)},
    }
    t0 = time.time()
    sampling = sampling or SamplingConfig(seed=0)
    result["music"] = music_statistics(model, vocab, pieces, entries, continuations, tokens, prompt_tokens, sampling)
    result["seconds"]["music"] = round(time.time() - t0, 1)
    if not write:
        return result

    path = model_dir / "eval.json"
    kept = {k: v for k, v in (json.loads(path.read_text()) if path.exists() else {}).items()
            if k in ("long_context", "lacrimosa", "listening", "endings", "forms", "lacrimosa_complete", "whole_pieces")}  # what the other modes added
    path.write_text(json.dumps(_finite({**result, **kept}), indent=1))
    cfg = read_config(model_dir)  # re-read: only the metrics change
    cfg.setdefault("metrics", {}).update(
        {"bits_per_note": result["bits_per_note"], "bits_per_token": result["bits_per_token"],
         "ngram_bits_per_note": result["ngram_bits_per_note"]})
    (model_dir / CONFIG).write_text(json.dumps(cfg, indent=1))
    return result


def long_context(model_dir: str | Path, windows: list[int], min_tokens: int, data_dir=None, batch_size=4,
                 device="cpu", write: bool = True) -> dict:
    """Does long context help? Bits per note on held-out pieces of at least ``min_tokens`` tokens, scored
    with each window length in ``windows`` (stride half a window); merged into MODEL/eval.json."""
    model_dir = Path(model_dir)
    model, vocab, cfg = load_model(model_dir, device)
    corpus = Corpus.load(Path(data_dir or cfg.get("data", {}).get("data_dir") or "data/music21"))
    long = [(p, e) for p, e in zip(corpus.pieces("valid"), corpus.entries("valid"), strict=True) if e["tokens"] >= min_tokens]
    if not long:
        raise MaiaError(f"no held-out piece has {min_tokens} tokens or more")
    pieces, notes = [p for p, _ in long], sum(e["notes"] for _, e in long)
    out = {"min_tokens": min_tokens, "pieces": len(pieces), "tokens": int(sum(len(p) for p in pieces)),
           "notes": notes, "bits_per_note": {}, "bits_per_token": {}}
    for w in windows:
        if model.max_context and w > model.max_context:
            raise MaiaError(f"window {w} exceeds the model's context {model.max_context}")
        bits = sliding_window_bits(model, pieces, w, max(1, w // 2), batch_size, device, vocab.pad_id)
        out["bits_per_note"][str(w)] = float(bits.sum() / notes)
        out["bits_per_token"][str(w)] = float(bits.sum() / len(bits))
    if not write:
        return out
    path = model_dir / "eval.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result["long_context"] = out
    path.write_text(json.dumps(_finite(result), indent=1))
    return out


def held_out_cases(model_dir: Path, data_dir, prompts: int, prompt_seconds: float, seconds: float, device: str):
    """(model, vocab, cases): ``prompts`` held-out prompts and their real continuations (training/listening.py)."""
    from training import listening as ls

    model, vocab, cfg = load_model(model_dir, device)
    corpus = Corpus.load(Path(data_dir or cfg.get("data", {}).get("data_dir") or "data/music21"))
    pieces = [remap_ids(p, corpus.vocab, vocab) for p in corpus.pieces("valid")]
    cases = ls.cases(pieces, corpus.entries("valid"), vocab, prompts, prompt_seconds, seconds,
                     lambda p, e: piece_tempo(p, e, vocab))
    if not cases:
        raise MaiaError(f"no held-out piece lasts {prompt_seconds + seconds:g} s")
    return model, vocab, cases


def endings(model_dir: str | Path, n: int, bars: int = 8, data_dir=None, device: str = "cpu", top_k: int | None = None,
            write: bool = True) -> tuple[dict, str]:
    """training/endings.py on ``n`` held-out prompts: each way of closing a piece, side by side; merged into
    MODEL/eval.json as "endings" unless ``write`` is False."""
    from training import endings as en

    model_dir = Path(model_dir)
    model, vocab, cases = held_out_cases(model_dir, data_dir, n, 12.0, bars * 2.0, device)
    cfg = SamplingConfig() if top_k is None else SamplingConfig(top_k=top_k)
    result = en.endings(model, vocab, cases, cfg, bars)
    if write:
        _merge_eval(model_dir, "endings", {"bars": bars, **result})
    return result, en.report(result, bars)


def forms(model_dir: str | Path, n: int, bars: int = 16, data_dir=None, device: str = "cpu",
          write: bool = True) -> tuple[dict, str]:
    """training/endings.py's forms on ``n`` held-out prompts, side by side with the real continuations;
    merged into MODEL/eval.json as "forms" unless ``write`` is False."""
    from training import endings as en

    model_dir = Path(model_dir)
    model, vocab, cases = held_out_cases(model_dir, data_dir, n, 12.0, bars * 2.0, device)
    result = en.forms(model, vocab, cases, SamplingConfig(), bars)
    if write:
        _merge_eval(model_dir, "forms", {"bars": bars, **result})
    return result, en.report_forms(result, bars)


def listening(model_dir: str | Path, settings_text: str, data_dir=None, prompts: int = 32, prompt_seconds: float = 12.0,
              seconds: float = 24.0, device: str = "cpu", write: bool = True) -> tuple[dict, str]:
    """training/listening.py's side-by-side comparison of sampling settings on held-out prompts; merged into
    MODEL/eval.json as "listening" unless ``write`` is False. Returns (result, markdown table)."""
    from training import listening as ls

    model_dir = Path(model_dir)
    model, vocab, cases = held_out_cases(model_dir, data_dir, prompts, prompt_seconds, seconds, device)
    result = ls.listen(model, vocab, cases, ls.parse_settings(settings_text))
    table = ls.report(result, len(cases), prompt_seconds, seconds)
    result = {"prompts": len(cases), "prompt_seconds": prompt_seconds, "seconds": seconds, "settings": result}
    if write:
        _merge_eval(model_dir, "listening", result)
    return result, table


def _merge_eval(model_dir: Path, entry: str, result: dict) -> None:
    """Merges ``result`` into MODEL/eval.json as ``entry``, keeping the rest."""
    path = model_dir / "eval.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[entry] = result
    path.write_text(json.dumps(_finite(data), indent=1))


def _finite(x):
    """JSON has no NaN: undefined figures become null."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def report(r: dict) -> str:
    """The markdown tables printed by the CLI."""
    lines = [
        f"{r['pieces']} held-out pieces of {r['data_dir']}: {r['tokens']:,} tokens, {r['notes']:,} notes; "
        f"window {r['window']}, stride {r['stride']}",
        "",
        "| model | bits/token | bits/note |",
        "|---|---:|---:|",
        f"| {r['kind']} ({r['model']}, step {r['step']}) | {r['bits_per_token']:.3f} | {r['bits_per_note']:.3f} |",
        f"| {r['ngram_order']}-gram, interpolated modified Kneser-Ney "
        f"({'12 keys' if r['ngram_transposed'] else 'as written'}) | {r['ngram_bits_per_token']:.3f} | "
        f"{r['ngram_bits_per_note']:.3f} |",
    ]
    if r.get("by_kind"):
        lines += ["", "Bits per note by token kind: " + ", ".join(f"{k} {v:.3f}" for k, v in r["by_kind"].items())]
    m = r.get("music")
    if m:
        s = m["settings"]
        lines += ["", f"{s['continuations']} continuations of {s['tokens']} tokens after {s['prompt_tokens']}-token "
                  f"prompts (top-k {s['top_k']}, temperature {s['temperature']}) vs the real continuations of "
                  f"the same prompts ({s['reference_pieces']} held-out pieces, spread over the split):", "",
                  "| feature | generated | held out | overlap |", "|---|---:|---:|---:|"]
        lines.append(f"| pitch-class histogram (pooled; each continuation vs its own prompt's) | | | "
                     f"{m['pitch_class']['overlap']:.2f}; {m['pitch_class']['paired_overlap']:.2f} |")
        for name in metrics.SCALAR_FEATURES:
            g, h = m[name]["generated"], m[name]["reference"]
            lines.append(f"| {name.replace('_', ' ')} | {g['mean']:.2f} ± {g['std']:.2f} | "
                         f"{h['mean']:.2f} ± {h['std']:.2f} | {m[name]['overlap']:.2f} |")
        if "key" in m:
            k = m["key"]
            lines.append(f"| pitch-class correlation with the prompt | {k['pc_correlation']['generated']:.2f} | "
                         f"{k['pc_correlation']['reference']:.2f} | |")
            lines.append(f"| key agreement with the prompt (same or relative) | {k['key_agreement']['generated']:.2f} | "
                         f"{k['key_agreement']['reference']:.2f} | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a model folder (model.safetensors + config.json)")
    ap.add_argument("--data", help="prepared corpus folder (default: the one in the model's config.json)")
    ap.add_argument("--continuations", type=int, default=8, help="sampled continuations for the music statistics")
    ap.add_argument("--tokens", type=int, default=512, help="tokens per continuation")
    ap.add_argument("--prompt-tokens", type=int, default=128, help="tokens of each held-out piece used as prompt")
    ap.add_argument("--stride", type=int, help="tokens between scoring windows (default: half a window)")
    ap.add_argument("--batch-size", type=int, help="windows scored at once (default 16; 4 with --long-context)")
    ap.add_argument("--ngram-order", type=int, default=5)
    ap.add_argument("--ngram-as-written", action="store_true", help="count the n-gram model untransposed")
    ap.add_argument("--top-k", type=int, default=SamplingConfig.top_k)
    ap.add_argument("--temperature", type=float, default=SamplingConfig.temperature)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--long-context", help="only score long pieces with these windows, e.g. 512,4096")
    ap.add_argument("--min-tokens", type=int, default=4096, help="with --long-context: shortest piece scored")
    ap.add_argument("--listen", help="compare sampling settings like a listener, e.g. \"top_k=5; top_k=0,min_p=0.05\" "
                    "(training/listening.py)")
    ap.add_argument("--prompts", type=int, default=32, help="with --listen: held-out prompts")
    ap.add_argument("--prompt-seconds", type=float, default=12.0, help="with --listen: seconds of each prompt")
    ap.add_argument("--seconds", type=float, default=24.0, help="with --listen: seconds of each continuation")
    ap.add_argument("--endings", type=int, help="close N held-out continuations each way (training/endings.py)")
    ap.add_argument("--forms", type=int, help="bring the theme back in N held-out continuations (training/endings.py)")
    ap.add_argument("--bars", type=int, help="with --endings (default 8) or --forms (default 16): bars per continuation")
    ap.add_argument("--no-write", action="store_true",
                    help="print only: leave MODEL/eval.json and config.json as they are (a trial of other settings)")
    a = ap.parse_args(argv)
    try:
        return _run(a)
    except MaiaError as e:  # a missing or corrupt corpus or model: one line, exit 1
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run(a) -> int:
    device = a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if a.forms:
        _, table = forms(a.model, a.forms, a.bars or 16, a.data, device, write=not a.no_write)
        print(table)
        return 0
    if a.endings:
        _, table = endings(a.model, a.endings, a.bars or 8, a.data, device, write=not a.no_write)
        print(table)
        return 0
    if a.listen:
        _, table = listening(a.model, a.listen, a.data, a.prompts, a.prompt_seconds, a.seconds, device,
                             write=not a.no_write)
        print(table)
        return 0
    if a.long_context:
        windows = [int(w) for w in a.long_context.split(",")]
        r = long_context(a.model, windows, a.min_tokens, a.data, batch_size=a.batch_size or 4, device=device,
                         write=not a.no_write)
        print(f"{r['pieces']} held-out pieces of >= {r['min_tokens']} tokens ({r['tokens']:,} tokens, {r['notes']:,} notes)")
        print("| context (tokens) | bits/token | bits/note |\n|---:|---:|---:|")
        for w in windows:
            print(f"| {w} | {r['bits_per_token'][str(w)]:.3f} | {r['bits_per_note'][str(w)]:.3f} |")
        if not a.no_write:
            print(f"\nwrote {Path(a.model) / 'eval.json'} (long_context)")
        return 0
    sampling = SamplingConfig(top_k=a.top_k, temperature=a.temperature, seed=a.seed)
    r = evaluate(a.model, a.data, a.continuations, a.tokens, a.prompt_tokens, a.stride, a.batch_size or 16,
                 a.ngram_order, not a.ngram_as_written, sampling, device, write=not a.no_write)
    print(report(r))
    if not a.no_write:
        print(f"\nwrote {Path(a.model) / 'eval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
