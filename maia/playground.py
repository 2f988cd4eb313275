"""The playground's logic: what app.py's buttons do, as plain functions (app.py itself is only the page).

    for update in stream(prompt_midi="x.mid", composer="bach", model="gpt", tokens=512, top_k=5,
                         temperature=1.0, seed=1, variations=2):
        update.outputs[0].roll, update.outputs[0].audio, ...   # files of the music so far

Models load once per process (``load``, cached) from the operator's folder (assets/models/ or
$MAIA_MODELS_DIR), by name only: a request can never point at a path. Every request writes into its own
``tempfile.mkdtemp`` folder, and every update into a subfolder of it, so no two requests or updates
share a file name; folders of requests over an hour old are removed as new requests come (Gradio has
copied their files into its own cache by then). Each request has a time budget ($MAIA_TIME_BUDGET, 120 s):
past it, sampling stops and the music made so far is finished. While tokens are sampled, ``stream`` yields the piano roll, the audio and the MIDI of
the music so far about every half second (less often when drawing and rendering get slow, so that they
never take more than a third of the time); the last update adds MusicXML and the analysis line.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from maia.checkpoint import PREFERRED_MODELS, WEIGHTS, list_models, load_model, models_root, read_vocab
from maia.encoding import MIDI_SUFFIXES, Piece, read
from maia.errors import InputError, MaiaError
from maia.generate import (
    Prompt,
    SamplingConfig,
    build_prompt,
    generate,
    ids_to_piece,
    max_tokens_cap,
    prompt_tokens_in_view,
)
from maia.notation import write_musicxml
from maia.vocab import Vocab

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"
LACRIMOSA = PROMPTS_DIR / "lacrimosa.mid"
SAMPLE_RATE = 44100  # the finished audio
PREVIEW_SAMPLE_RATE = 22050  # audio of the music so far: rendered often, so at half the rate
UPDATE_INTERVAL = 0.5  # seconds between streamed updates
FIRST_UPDATE = 0.2  # without a prompt to show at once, the first notes are shown this soon
TOKENS_PER_SECOND = 20  # for the "≈ N s" hint; music21 corpus: Bach 20, Mozart 24, Chopin 28 tokens per second
DEFAULT_TIME_BUDGET = 120.0  # seconds one request may sample for (MAIA_TIME_BUDGET); then it keeps what it made
REQUESTS_DIR = Path(tempfile.gettempdir()) / "maia-requests"  # one subfolder per request
KEEP_REQUEST_FILES = 3600  # seconds a request's folder outlives it: Gradio copies the files within seconds


# ---- models ----------------------------------------------------------------------------------------
def device() -> str:
    """CUDA when available, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def configure_serving() -> int:
    """Process-wide settings, called once when the server starts; returns the queue's concurrency limit
    ($MAIA_CONCURRENCY, default 2 on CPU, 4 on CUDA). On CPU each of the concurrent requests gets an equal
    share of the cores as torch threads: one sampling step is too small to gain from more, and more
    threads than cores make OpenMP spin against itself (30x slower when the machine is busy)."""
    on_gpu = device() == "cuda"
    try:
        concurrency = max(1, int(os.environ.get("MAIA_CONCURRENCY", 4 if on_gpu else 2)))
    except ValueError:
        concurrency = 4 if on_gpu else 2
    if not on_gpu:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // concurrency))
    return concurrency


def warm_up(model: str | None) -> None:
    """Loads ``model`` and the libraries a request needs (matplotlib, FluidSynth, music21), so that the
    first click is as quick as the next ones. Called once when the server starts."""
    if model:
        load(model)
    import music21  # noqa: F401  (about a second to import)

    from maia import pianoroll, synth  # noqa: F401


def installed_models() -> dict[str, Path]:
    """Model folders the operator installed, by name: gpt, sparse, lstm first, then the rest by name."""
    models = list_models(models_root())
    order = [m for m in PREFERRED_MODELS if m in models] + [m for m in models if m not in PREFERRED_MODELS]
    return {m: models[m] for m in order}


def model_choices() -> list[str]:
    return list(installed_models())


@functools.lru_cache(maxsize=4)
def _load(folder: str, mtime: float, dev: str):
    """One load per model folder (and version of it) per process; the model is shared by all requests."""
    return load_model(folder, device=dev)


def load(name: str):
    """The installed model called ``name`` -> (model, vocab). InputError for any other name."""
    models = installed_models()
    if name not in models:
        raise InputError(f"unknown model {name!r}; installed: {', '.join(models) or 'none'} (in {models_root()})")
    folder = models[name]
    weights = folder / WEIGHTS  # missing: load_model says so, in its words
    model, vocab, _ = _load(str(folder), weights.stat().st_mtime if weights.is_file() else 0.0, device())
    return model, vocab


def vocab_of(name: str | None) -> Vocab:
    """The vocabulary of an installed model, read from its config.json without loading the weights; the
    default vocabulary for an unknown or broken model (composing with it then says what is wrong)."""
    models = installed_models()
    if name not in models:
        return Vocab()
    try:
        return read_vocab(models[name])
    except MaiaError:
        return Vocab()


def composer_choices(name: str | None) -> list[tuple[str, str]]:
    """(label, value) pairs for the composer dropdown: the model's composers, "unknown" last."""
    names = [c for c in vocab_of(name).composers if c != "unknown"]
    return [(c.replace("_", " ").title(), c) for c in names] + [("Any (unknown)", "unknown")]


def example_prompts() -> list[Path]:
    """The MIDI files in assets/prompts/, the Lacrimosa first."""
    files = sorted(p for p in PROMPTS_DIR.glob("*") if p.suffix.lower() in MIDI_SUFFIXES) if PROMPTS_DIR.is_dir() else []
    return sorted(files, key=lambda p: p != LACRIMOSA)


def approx_seconds(tokens: float) -> float:
    return float(tokens) / TOKENS_PER_SECOND


# ---- one request ----------------------------------------------------------------------------------
@dataclass
class Output:
    """One variation's files at one moment of the request."""

    midi: Path
    roll: Path
    audio: Path | None = None
    musicxml: Path | None = None
    analysis: str = ""


@dataclass
class Update:
    """What the page shows after one streamed step: one Output per variation and a status line."""

    outputs: list[Output]
    status: str
    warnings: list[str] = field(default_factory=list)  # shown once, as gr.Warning
    done: bool = False


def settings(tokens, top_k, temperature, seed, variations) -> SamplingConfig:
    """The page's values (floats from sliders, None from an empty box) -> a validated SamplingConfig."""
    try:
        seed = None if seed is None or seed == "" else int(seed)
        config = SamplingConfig(max_new_tokens=int(tokens), top_k=int(top_k), temperature=float(temperature),
                                seed=seed, variations=int(variations))
    except (TypeError, ValueError):
        raise InputError("tokens, top-k, temperature, seed and variations must be numbers") from None
    return config.validate(max_tokens_cap())


def prepare_prompt(prompt_midi: str | Path | None, composer: str | None, vocab: Vocab) -> Prompt:
    """The uploaded MIDI (or no file) conditioned on ``composer``; InputError for a bad upload."""
    piece = None
    if prompt_midi:
        path = Path(prompt_midi)
        if path.suffix.lower() not in MIDI_SUFFIXES:
            raise InputError(f"{path.name}: upload a MIDI file (.mid or .midi)")
        piece = read(path, vocab.config)
    return build_prompt(vocab, composer, piece)


def time_budget() -> float:
    """Seconds one request may sample for, from MAIA_TIME_BUDGET (default 120)."""
    try:
        return max(0.0, float(os.environ.get("MAIA_TIME_BUDGET", DEFAULT_TIME_BUDGET)))
    except ValueError:
        return DEFAULT_TIME_BUDGET


def new_request_folder() -> Path:
    """A fresh folder for one request's files. Removes the folders of requests older than an hour, so
    that a server running for weeks does not fill its disk."""
    REQUESTS_DIR.mkdir(exist_ok=True)
    cutoff = time.time() - KEEP_REQUEST_FILES
    for old in REQUESTS_DIR.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # another request removed it first
            pass
    return Path(tempfile.mkdtemp(prefix="maia-", dir=REQUESTS_DIR))


def stream(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, *,
           interval: float = UPDATE_INTERVAL, audio: bool = True, budget: float | None = None) -> Iterator[Update]:
    """Composes and streams: yields an Update at once when there is a prompt (else after 0.2 s of
    sampling), then about every ``interval`` seconds, then the finished files. Sampling stops after
    ``budget`` seconds (default: time_budget()) from the request's start. Raises InputError for a bad
    request."""
    budget = time_budget() if budget is None else budget
    deadline = time.monotonic() + budget
    config = settings(tokens, top_k, temperature, seed, variations)
    net, vocab = load(model)
    prompt = prepare_prompt(prompt_midi, composer, vocab)
    folder = new_request_folder()
    warnings = [prompt.message] if prompt.message else []
    in_view = prompt_tokens_in_view(net, len(prompt.ids), config)
    if in_view < len(prompt.ids):  # the prompt is longer than the model's window: say what it sees
        warnings.append(f"the prompt ({len(prompt.ids) - 2} tokens) is longer than the {model} model's context "
                        f"({net.max_context} tokens): it continues from the prompt's last {in_view - 1} tokens")
    if audio:
        from maia.synth import INSTALL_HINT, fluidsynth_available

        if not fluidsynth_available():
            audio = False
            warnings.append(f"no audio: {INSTALL_HINT}. The MIDI and the piano roll still work.")

    rows = [list(prompt.ids) for _ in range(config.variations)]
    ended = [False] * config.variations
    made = 0  # new tokens per variation so far
    start = time.monotonic()

    def snapshot(k: int, final: bool) -> Update:
        status = _status(made, config, ended, time.monotonic() - start, model)
        sub = folder if final else folder / f"u{k:04d}"
        sub.mkdir(exist_ok=True)
        outs = [_render(ids_to_piece(ids, vocab, prompt), prompt, sub / f"maia-{i + 1}", audio, final)
                for i, ids in enumerate(rows)]
        if k >= 2:  # Gradio has copied update k-2's files into its cache by now
            shutil.rmtree(folder / f"u{k - 2:04d}", ignore_errors=True)
        return Update(outs, status, warnings if k == 0 else [])

    k = 0
    if len(prompt.ids) > 2:  # show the prompt right away: the first update of the click
        yield snapshot(k, False)
        k += 1
    start = time.monotonic()  # the status line's tokens/s counts sampling time from here
    next_at = start + (interval if k else min(interval, FIRST_UPDATE))
    out_of_time = False
    for step in generate(net, prompt.ids, config, vocab):
        if time.monotonic() > deadline:  # the time budget: keep what was made
            out_of_time = True
            break
        made += 1
        for i, t in enumerate(step):
            if t is not None:
                rows[i].append(t)
                ended[i] = t == vocab.end_id
        if time.monotonic() >= next_at:
            t0 = time.monotonic()
            yield snapshot(k, False)
            k += 1
            # Drawing and rendering grow with the music: space updates so they take <= 1/3 of the time.
            next_at = time.monotonic() + max(interval, 2 * (time.monotonic() - t0))
    update = snapshot(k, True)
    for i, out in enumerate(update.outputs):
        _finish(ids_to_piece(rows[i], vocab, prompt), out, f"maia — {prompt.composer}",
                f"model {model}, seed {config.seed if config.seed is not None else 'random'}, variation {i + 1}")
    update.done = True
    update.status = "done: " + update.status
    if out_of_time:
        update.status += " · stopped at the time limit"
        update.warnings = [*update.warnings, f"stopped after {budget:g} s, the time limit of one request: kept "
                                             f"{made} of {config.max_new_tokens} tokens"]
    yield update


def _render(piece: Piece, prompt: Prompt, stem: Path, audio: bool, final: bool) -> Output:
    """MIDI, piano roll and (when FluidSynth is there) audio of one variation's music so far."""
    from maia.pianoroll import save_png

    out = Output(midi=piece.write_midi(stem.with_suffix(".mid")),
                 roll=save_png(piece, stem.with_name(stem.name + "-roll.png"), prompt_steps=prompt.steps or None))
    if audio and len(piece):
        from maia.synth import render, write_wav

        rate = SAMPLE_RATE if final else PREVIEW_SAMPLE_RATE
        out.audio = write_wav(render(piece, rate), stem.with_suffix(".wav"), rate)
    out.analysis = f"{len(piece)} notes · {piece.duration_seconds:.1f} s"
    return out


def _finish(piece: Piece, out: Output, title: str, subtitle: str) -> None:
    """Adds the key (Krumhansl-Schmuckler) and the MusicXML grand staff (maia/notation.py) to a finished
    variation."""
    from maia.metrics import estimate_key, key_name

    key = "?"
    if len(piece):
        key = key_name(estimate_key(piece)).replace("b ", "♭ ")
        try:
            out.musicxml = write_musicxml(piece, out.midi.with_suffix(".musicxml"), title=title, subtitle=subtitle)
        except Exception:  # music21 raises many unrelated types on odd music; the MIDI stays usable
            out.musicxml = None
    out.analysis = f"Key: {key} · {out.analysis}"


def _status(made: int, config: SamplingConfig, ended: list[bool], elapsed: float, model: str) -> str:
    rate = made / elapsed if elapsed > 0 else 0.0
    text = f"{made}/{config.max_new_tokens} tokens · {rate:.0f} tokens/s · {model} on {device()}"
    finished = [str(i + 1) for i, e in enumerate(ended) if e]
    if finished:
        text += f" · variation {', '.join(finished)} reached the end of the piece"
    return text


def continue_from(midi: str | Path | None) -> str:
    """A finished variation's MIDI as the next prompt."""
    if not midi:
        raise InputError("nothing to continue yet: compose something first")
    return str(midi)
