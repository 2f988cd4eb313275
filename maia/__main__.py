"""maia's command line: encode, decode, generate, infill, score, info.

Usage:
    python -m maia encode FILE                      tokens, space-separated, on stdout
    python -m maia decode TOKENS.txt -o OUT.mid     tokens back to MIDI
    python -m maia generate [--prompt FILE] [--composer NAME] [--model piano|lstm|sparse|DIR] -o OUT.mid
    python -m maia infill FILE --from-beat X --to-beat Y [--seed N --top-k K] -o OUT.mid
    python -m maia score FILE... [--model NAME] [--composer NAME] [--json]
    python -m maia info                             vocabulary, special tokens, composers, models

Bad input ends with one line on stderr naming the file and the problem, and exit status 1 (2 for a
command-line usage error). Never a traceback.

Over 300 lines because it holds every subcommand's flags and help (argparse is long-winded); each ``cmd_*`` is
short and composes through maia/compose.py and finishes through maia/outputs.py, as the page does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maia.errors import InputError, MaiaError


def _vocab_for(a):
    """The vocabulary of the chosen model, or the default one when no model is installed."""
    from maia.registry import default_model, models_root, read_vocab, resolve_model  # torch-free: no weights loaded
    from maia.vocab import Vocab

    name = a.model or default_model(a.limits.models_dir)
    if name is None:
        return Vocab()
    return read_vocab(resolve_model(name, models_root(a.limits.models_dir)))  # CheckpointError naming the folder


def _read(a, path, vocab):
    """The file at ``path`` as a Piece on ``vocab``'s grid, within the size and length limits."""
    from maia.encoding import read

    return read(path, vocab.config, max_bytes=a.limits.max_input_bytes, max_quarters=a.limits.max_quarters)


def cmd_encode(a) -> int:
    from maia.encoding import encode

    vocab = _vocab_for(a)
    piece = _read(a, a.file, vocab)
    print(" ".join(encode(piece, vocab, a.composer)))
    return 0


def cmd_decode(a) -> int:
    from maia.encoding import decode

    path = Path(a.tokens)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file of tokens") from None
    vocab = _vocab_for(a)
    tokens = text.split()
    unknown = [t for t in tokens if t not in vocab.stoi]
    if not tokens or len(unknown) == len(tokens):
        raise InputError(f"{path}: no maia tokens found")
    if unknown:
        print(f"{path}: skipped {len(unknown)} unknown tokens (first: {unknown[0]!r})", file=sys.stderr)
    ts = tuple(int(x) for x in a.time_signature.split("/")) if a.time_signature else None
    piece = decode(tokens, vocab, tempo_qpm=a.tempo, time_signature=ts)
    piece.write_midi(a.output)
    print(f"wrote {a.output}: {len(piece)} notes, {piece.duration_seconds:.1f} s", file=sys.stderr)
    return 0


def cmd_info(a) -> int:
    from maia.registry import installed_models, read_config
    from maia.vocab import END, PAD, START

    vocab = _vocab_for(a)
    c = vocab.config
    print(f"vocabulary: {len(vocab)} tokens ({c.steps_per_quarter} steps per quarter, waits 1..{c.max_wait}, "
          f"pitches {c.pitch_lo}..{c.pitch_hi}, {c.n_velocity_bins} dynamics levels, {len(vocab.merges)} n-gram merges)")
    print(f"special tokens: {PAD} {START} {END}")
    print(f"composers ({len(vocab.composers)}): {', '.join(vocab.composers)}")
    models = installed_models(a.limits.models_dir)
    if not models:
        print("models: none installed (train one: python -m training.train --config training/configs/gpt.toml)")
    for name, folder in models.items():
        try:
            cfg = read_config(folder)
            bpn = cfg.get("metrics", {}).get("bits_per_note")
            print(f"model {name}: {cfg['kind']}, {folder}" + (f", {bpn:.2f} bits/note held out" if bpn else ""))
        except MaiaError as e:
            print(f"model {name}: unusable ({e})")
    return 0


def _load(a):
    """(model, vocab, config, name, device) of the named or default model."""
    from maia.checkpoint import default_model, load_model, models_root, resolve_model

    root = models_root(a.limits.models_dir)
    name = a.model or default_model(root)
    if name is None:
        raise InputError(f"no model installed in {root}: train one, or pass --model FOLDER")
    device = a.limits.torch_device()
    model, vocab, cfg = load_model(resolve_model(name, root), device=device)
    return model, vocab, cfg, name, device


def cmd_score(a) -> int:
    import json

    from maia.generate import resolve_composer
    from maia.scoring import model_window, score_piece

    model, vocab, cfg, name, device = _load(a)
    composer = resolve_composer(vocab, a.composer)
    window = model_window(model, cfg)
    results, failed = [], 0
    for f in a.files:
        try:
            piece = _read(a, f, vocab)
            r = score_piece(model, vocab, piece, composer, window, device)
            results.append({"file": f, **{k: r[k] for k in ("notes", "tokens", "bits", "bits_per_note",
                                                             "bits_per_token", "by_kind", "surprise")}})
        except MaiaError as e:
            failed += 1
            results.append({"file": f, "error": str(e)})
    if a.json:
        print(json.dumps(results))
    else:
        print(f"model {name}, composer {composer}, window {window} tokens")
        print(f"{'bits/note':>10} {'bits/token':>10} {'notes':>7}  file")
        for r in results:
            if "error" in r:
                print(f"{'-':>10} {'-':>10} {'-':>7}  {r['error']}")  # the message names the file
            else:
                print(f"{r['bits_per_note']:>10.3f} {r['bits_per_token']:>10.3f} {r['notes']:>7}  {r['file']}")
        ok = [r for r in results if "error" not in r]
        if len(ok) > 1:
            total, notes = sum(r["bits"] for r in ok), sum(r["notes"] for r in ok)
            print(f"{total / max(notes, 1):>10.3f} {'':>10} {notes:>7}  all {len(ok)} files (total bits / notes)")
    if failed:
        print(f"maia: {failed} of {len(a.files)} files could not be scored", file=sys.stderr)
    return 1 if failed else 0


def cmd_infill(a) -> int:
    from maia.compose import Composition
    from maia.generate import SamplingConfig, resolve_composer
    from maia.infill import beats_to_steps

    model, vocab, _, name, _ = _load(a)
    if not vocab.fim:
        raise InputError(f"model {name} was not trained to fill in the middle")
    piece = _read(a, a.file, vocab)
    start, end = beats_to_steps(piece, a.from_beat, a.to_beat)
    config = SamplingConfig(max_new_tokens=a.tokens, top_k=_top_k(a), top_p=a.top_p, temperature=a.temperature,
                            seed=a.seed).validate(a.limits.max_tokens)
    comp = Composition.passage(model, vocab, piece, start, end, resolve_composer(vocab, a.composer), config,
                               _controls(a)).sample()
    (out,) = comp.pieces()
    out.write_midi(a.output)
    new = int(((out.notes[:, 0] >= start) & (out.notes[:, 0] < end)).sum())
    print(f"wrote {a.output}: beats {a.from_beat:g}-{a.to_beat:g} rewritten with {new} notes "
          f"({comp.made} tokens), {len(comp.span.kept)} notes kept", file=sys.stderr)
    return 0


def _top_k(a) -> int:
    """--top-k, or SamplingConfig's default (chosen on held-out music: docs/models.md, "Whole pieces")."""
    from maia.generate import SamplingConfig

    return SamplingConfig.top_k if a.top_k is None else a.top_k


def _controls(a):
    """The steering flags as Controls (maia/controls.py); None when none is given."""
    from maia.controls import Controls, parse_key

    c = Controls(key=parse_key(a.key), key_strength=a.key_strength, lowest=a.lowest, highest=a.highest,
                 density=a.density).validate()
    return c if c.active else None


def _add_controls(p) -> None:
    p.add_argument("--key", help="hold notes to a key's scale, e.g. 'D minor' (see --key-strength)")
    p.add_argument("--key-strength", type=float, default=1.0, help="0..1: how strongly (1: never outside)")
    p.add_argument("--lowest", type=int, help="lowest MIDI pitch to play (e.g. 36)")
    p.add_argument("--highest", type=int, help="highest MIDI pitch to play (e.g. 96)")
    p.add_argument("--density", type=float, default=1.0, help="0.25..4: notes against moving on in time (above 1: more notes per second)")


def _numbered(path: str, i: int) -> Path:
    """Output path of variation i (0-based): the path itself for the first, name_<i+1>.ext after."""
    p = Path(path)
    return p if i == 0 else p.with_name(f"{p.stem}_{i + 1}{p.suffix}")


def cmd_generate(a) -> int:
    from tqdm import tqdm

    from maia import form, outputs
    from maia.compose import Composition
    from maia.generate import SamplingConfig, build_prompt

    config = SamplingConfig(max_new_tokens=a.tokens, top_k=_top_k(a), top_p=a.top_p, min_p=a.min_p,
                            temperature=a.temperature, seed=a.seed, variations=a.variations).validate(a.limits.max_tokens)
    if (a.end or a.form) and a.bars is None and a.seconds is None:
        raise InputError(f"{'--end' if a.end else '--form'} needs a length: add --bars N (or --seconds S)")
    model, vocab, _, name, device = _load(a)
    piece = _read(a, a.prompt, vocab) if a.prompt else None
    prompt = build_prompt(vocab, a.composer, piece, max_tokens=a.limits.max_prompt_tokens)
    if prompt.message:
        print(f"maia: {prompt.message}", file=sys.stderr)
    whole = a.bars is not None or a.seconds is not None  # a length in bars or seconds, perhaps an ending and a form
    comp = Composition.continuation(model, vocab, prompt, config, a.bars, a.seconds, a.end, a.form, a.theme_bars,
                                    _controls(a), a.key_candidates, piece, a.limits.max_tokens)
    with tqdm(total=None if whole else config.max_new_tokens, unit="tok", desc=f"{name} ({device})",
              disable=None) as bar:
        results = comp.sample(lambda _: bar.update()).finish()
    for i, (out, ending) in enumerate(results):
        # The same door as the playground's downloads (maia/outputs.py).
        files = outputs.write(out, midi=_numbered(a.output, i), wav=a.wav and _numbered(a.wav, i),
                              roll=a.roll and _numbered(a.roll, i), musicxml=a.musicxml and _numbered(a.musicxml, i),
                              title=f"maia — {prompt.composer}", subtitle=f"model {name}, seed {config.seed}, "
                              f"variation {i + 1}", prompt_steps=prompt.steps, soundfont=a.limits.soundfont or None)
        bars = ""
        if whole:
            per_bar = form.bar_steps(prompt.time_signature, out.steps_per_quarter)
            bars = f", {(out.end_step - prompt.steps) / per_bar:.2f} bars after the prompt"
        print(f"wrote {files.midi}: {len(out)} notes, {out.duration_seconds:.1f} s{bars} · {files.analysis}",
              file=sys.stderr)
        if ending is not None:
            from maia.metrics import PITCH_NAMES

            print(f"ending: tonic chord of {PITCH_NAMES[ending.key[0]]} {ending.key[1]} on the last downbeat; "
                  f"{ending.rewritten_bars} bar(s) before it rewritten (best of {len(ending.candidate_bits)} by "
                  f"likelihood), {ending.bits_per_note:.2f} bits per note", file=sys.stderr)
            if ending.message:
                print(f"maia: {ending.message}", file=sys.stderr)
        for path in (files.roll, files.musicxml, files.audio):
            if path is not None:
                print(f"wrote {path}", file=sys.stderr)
        if a.musicxml and files.musicxml is None:
            print(f"maia: variation {i + 1} could not be notated as MusicXML; its MIDI is complete", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m maia", description="maia: an AI composer of piano music")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("encode", help="print a file's notewise tokens")
    p.add_argument("file")
    p.add_argument("--composer", help="composer token to start with (default: unknown)")
    p.add_argument("--model", help="use this model's vocabulary")
    p.set_defaults(func=cmd_encode)
    p = sub.add_parser("decode", help="write tokens as MIDI")
    p.add_argument("tokens", help="a text file of space-separated tokens")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--tempo", type=float, default=120.0, help="quarter notes per minute")
    p.add_argument("--time-signature", help="e.g. 3/4")
    p.add_argument("--model", help="use this model's vocabulary")
    p.set_defaults(func=cmd_decode)
    p = sub.add_parser("info", help="vocabulary, composers and installed models")
    p.add_argument("--model")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("generate", help="compose a continuation")
    p.add_argument("--prompt", help="MIDI or score file to continue")
    p.add_argument("--composer", help="composer to condition on (bach, mozart, ...)")
    p.add_argument("--model", default=None, help="gpt, lstm, sparse, or a model folder")
    p.add_argument("--bars", type=int, help="compose exactly N bars after the prompt, in its metre (4/4 without one)")
    p.add_argument("--seconds", type=float, help="compose exactly S seconds after the prompt")
    p.add_argument("--end", action="store_true", help="close with a cadence in the home key (the prompt's, or --key's)")
    p.add_argument("--form", help="bring the opening theme back: ABA, AABA, ABACA or rondo (with --bars)")
    p.add_argument("--theme-bars", type=int, default=4, help="with --form: bars of the opening theme (default 4)")
    p.add_argument("--key-candidates", type=int, default=1, choices=range(1, 5), metavar="N",
                   help="with --end: sample N continuations in one batch and keep the first that stays in the home key "
                   "(1-4; variations x N at most 4)")
    p.add_argument("--tokens", type=int, default=512, help="tokens to generate without --bars/--seconds (at most "
                   "MAIA_MAX_TOKENS, 4,096 by default)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens (1..50; 0: no cut, "
                   "for --top-p or --min-p; default 20, chosen in docs/models.md; the original maia's is 5)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus: keep the likeliest tokens up to this probability")
    p.add_argument("--min-p", type=float, default=None, help="keep tokens at least this fraction as likely as the likeliest")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variations", type=int, default=1, help="continuations sampled together (1..4)")
    p.add_argument("-o", "--output", required=True, help="output MIDI (variation i>1 gets a _i suffix)")
    p.add_argument("--wav", help="also render audio with FluidSynth")
    p.add_argument("--roll", help="also draw the piano roll (PNG)")
    p.add_argument("--musicxml", help="also write sheet music: a piano grand staff in MusicXML")
    _add_controls(p)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("infill", help="rewrite a passage between two beats, keeping the rest")
    p.add_argument("file", help="MIDI or score file")
    p.add_argument("--from-beat", type=float, required=True, help="start of the passage, in quarter notes from 0")
    p.add_argument("--to-beat", type=float, required=True, help="end of the passage (exclusive)")
    p.add_argument("--composer", help="composer to condition on (default: unknown)")
    p.add_argument("--model", default=None, help="a fill-in-the-middle model (the default piano model is one)")
    p.add_argument("--tokens", type=int, default=512, help="most tokens for the passage")
    p.add_argument("--top-k", type=int, default=None, help="as for generate (default 20)")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True)
    _add_controls(p)
    p.set_defaults(func=cmd_infill)
    p = sub.add_parser("score", help="bits per note of files under a model (where the music surprises it)")
    p.add_argument("files", nargs="+", help="MIDI or score files")
    p.add_argument("--model", default=None)
    p.add_argument("--composer", help="composer token to score with (default: unknown)")
    p.add_argument("--json", action="store_true", help="one JSON list, one object per file, with per-note surprise")
    p.set_defaults(func=cmd_score)
    from maia.gallery.cli import add_parser as add_gallery  # python -m maia gallery ...

    add_gallery(sub)
    return ap


def main(argv=None) -> int:
    from maia.limits import Limits

    a = build_parser().parse_args(argv)
    try:
        a.limits = Limits.from_env()  # the only reading of MAIA_* settings (maia/limits.py)
        return a.func(a)
    except MaiaError as e:
        print(f"maia: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:  # e.g. an unwritable output path, a bad --time-signature
        print(f"maia: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
