"""The playground's logic: what app.py's buttons do, as plain functions (app.py itself is only the page).

    for update in stream(prompt_midi="x.mid", composer="bach", model="piano", tokens=512, top_k=5,
                         temperature=1.0, seed=1, variations=2):
        update.outputs[0].live, update.outputs[0].midi, ...   # the music so far

Models load once per process (``load``, cached) from the operator's folder (assets/models/ or
$MAIA_MODELS_DIR), by name only: a request can never point at a path. Every request writes into its own
``tempfile.mkdtemp`` folder, and every update into a subfolder of it, so no two requests or updates
share a file name; folders of requests over an hour old are removed as new requests come (Gradio has
copied their files into its own cache by then).

While tokens are sampled, ``stream`` yields about every half second the MIDI so far and, for the page's
piano roll, a JSON message with the notes and the audio rendered since the last update (maia/live.py:
FluidSynth on a worker thread, appended, so listening starts with the first notes and never restarts).
The last update adds the WAV (the audio as heard), the PNG roll, the MusicXML with its engraved pages,
and the analysis line (maia/outputs.py, as the CLI writes them). Each request has a time budget
(``LIMITS.time_budget``, MAIA_TIME_BUDGET, 120 s) that covers the finishing too: sampling stops when what
is left would not fit, and the music made so far is finished.

A server (``configure_serving``) samples in processes of its own (maia/sampler.py, ``LIMITS.sampling``), one per
concurrent request, so that the sampling never waits for the GIL while Gradio, the audio and the updates run;
called as a library, ``stream`` samples in the caller's thread.

The server's limits and places (``maia.limits.Limits``: sizes, time budget, models folder, SoundFont,
device) are set once by ``use(Limits.from_env())`` in app.py; the defaults hold until then.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import functools
import math
import os  # cpu_count
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from maia import memory, outputs
from maia.checkpoint import WEIGHTS, installed_models, load_model, models_root, read_vocab
from maia.compose import PASSAGE_TOKENS, Composition
from maia.encoding import MIDI_SUFFIXES, Piece, read
from maia.errors import InputError, MaiaError, ServerError
from maia.generate import (
    Prompt,
    SamplingConfig,
    build_prompt,
    ids_to_piece,
    prompt_tokens_in_view,
    time_steps,
)
from maia.limits import Limits
from maia.live import FOREVER
from maia.sampler import SamplerPool
from maia.vocab import EncodingConfig, Vocab

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"
LACRIMOSA = PROMPTS_DIR / "lacrimosa.mid"
LACRIMOSA_BARS = 22  # maia's bars after Mozart's 8: the completed movement is 30 bars long
UPDATE_INTERVAL = 0.5  # seconds between streamed updates
FIRST_UPDATE = 0.1  # without a prompt to show at once, the first notes are shown this soon
# tokens per second of music in the piano model's corpus, 10th, 50th and 90th percentile of 300 of its files
# (python -m scripts.corpus_pace): the length hint's range when there is no prompt to measure
CORPUS_TOKENS_PER_SECOND = (18.0, 27.0, 47.0)
FINISH_BASE_SECONDS = 0.25  # finishing one variation: PNG, MusicXML, engraving (finish_seconds)
FINISH_SECONDS_PER_NOTE = 0.004
WAV_SECONDS_PER_SECOND = 0.02  # the WAV rendered again at 44.1 kHz, per second of music (0.011 measured at load 10)
HISTORY_LENGTH = 50  # pieces one session's undo can go back through
REQUESTS_DIR = Path(tempfile.gettempdir()) / "maia-requests"  # one subfolder per request


LIMITS = Limits()  # the server's; app.py calls use(Limits.from_env()) once
_POOL: SamplerPool | None = None  # the sampler processes, when serving (configure_serving)


def use(limits: Limits) -> None:
    """Sets the limits and places every request of this process runs with (app.py, at start)."""
    global LIMITS
    LIMITS = limits


# ---- models ----------------------------------------------------------------------------------------
def device() -> str:
    """The device models run on (``LIMITS.device``: CUDA when available, else the CPU)."""
    return LIMITS.torch_device()


def configure_serving() -> int:
    """Process-wide settings, called once when the server starts; returns the queue's concurrency limit
    (``LIMITS.concurrency``, MAIA_CONCURRENCY: default 2 on CPU, 4 on CUDA). On CPU each of the concurrent
    requests gets an equal share of the cores as torch threads: one sampling step is too small to gain from
    more, and more threads than cores make OpenMP spin against itself (30x slower when the machine is busy).
    With ``LIMITS.sampling == "process"`` (the default) requests sample in as many processes of their own
    (maia/sampler.py), off the server's GIL."""
    global _POOL
    memory.limit_arenas(2)  # freed memory stays reusable across Gradio's worker threads (maia/memory.py)
    dev = device()
    concurrency = LIMITS.serving_concurrency(dev)
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    if dev == "cpu":
        torch.set_num_threads(threads)
    if LIMITS.sampling == "process" and _POOL is None:
        _POOL = SamplerPool(concurrency, dev, threads)
        atexit.register(_POOL.close)
    return concurrency


def warm_up(model: str | None) -> None:
    """Loads ``model`` (here and in the sampler processes) and the libraries a request needs (matplotlib,
    FluidSynth, music21), so that the first click is as quick as the next ones. Called once when the server
    starts."""
    if model:
        load(model)
        if _POOL is not None:
            _POOL.preload(*_resolve(model))
    import music21  # noqa: F401  (about a second to import)

    from maia import pianoroll, synth  # noqa: F401


def model_choices() -> list[str]:
    """The installed models' names, in the order offered (maia.checkpoint.installed_models)."""
    return list(installed_models(LIMITS.models_dir))


@functools.lru_cache(maxsize=4)
def _load(folder: str, mtime: float, dev: str):
    """One load per model folder (and version of it) per process; the model is shared by all requests."""
    return load_model(folder, device=dev)


def _resolve(name: str) -> tuple[str, float]:
    """The installed model called ``name`` -> (its folder, its weights' modification time: a new version of
    the file is a new model). InputError for any other name."""
    models = installed_models(LIMITS.models_dir)
    if name not in models:
        raise InputError(f"unknown model {name!r}; installed: {', '.join(models) or 'none'} "
                         f"(in {models_root(LIMITS.models_dir)})")
    weights = models[name] / WEIGHTS  # missing: load_model says so, in its words
    return str(models[name]), weights.stat().st_mtime if weights.is_file() else 0.0


def load(name: str):
    """The installed model called ``name`` -> (model, vocab). InputError for any other name."""
    model, vocab, _ = _load(*_resolve(name), device())
    return model, vocab


def _steps(name: str, comp: Composition) -> Iterator[list[int | None]]:
    """maia.generate's per-step tokens for ``comp`` (the model called ``name``): in a sampler process when
    serving with them, else in this thread (Composition.steps)."""
    if _POOL is None:
        return comp.steps()
    folder, mtime = _resolve(name)
    if comp.span is not None:
        s = comp.span
        return _POOL.infill(folder, s.prefix_ids, s.suffix_ids, s.steps, comp.sampling, mtime=mtime)
    return _POOL.generate(folder, comp.prompt.ids, comp.sampling, comp.steering or comp.controls, mtime=mtime,
                          fill_steps=comp.fill_steps)


def vocab_of(name: str | None) -> Vocab:
    """The vocabulary of an installed model, read from its config.json without loading the weights; the
    default vocabulary for an unknown or broken model (composing with it then says what is wrong)."""
    models = installed_models(LIMITS.models_dir)
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


def composer_for(name: str | None, composer: str | None) -> tuple[str, str | None]:
    """The composer to keep when the page switches to the model called ``name``: ``composer`` when that model
    knows it, else the model's first, with a line saying so."""
    choices = composer_choices(name)
    if composer in [value for _, value in choices]:
        return composer, None
    label = str(composer).replace("_", " ").title()
    return choices[0][1], f"the {name} model does not know {label}: the composer is now {choices[0][0]}"


def example_prompts() -> list[Path]:
    """The MIDI files in assets/prompts/, the Lacrimosa first."""
    files = sorted(p for p in PROMPTS_DIR.glob("*") if p.suffix.lower() in MIDI_SUFFIXES) if PROMPTS_DIR.is_dir() else []
    return sorted(files, key=lambda p: p != LACRIMOSA)


def length_hint(tokens, prompt_midi=None, model: str | None = None) -> str:
    """How much music ``tokens`` new tokens make, honestly: at the prompt's own pace (its tokens per second, in
    ``model``'s vocabulary) when there is a prompt, else the range of the corpus's paces. A token is a note, a
    wait or a velocity change, so a second of dense music takes several times the tokens of a sparse one."""
    try:
        n = whole_number(tokens, "tokens")
    except InputError:
        return ""
    if prompt_midi and model in model_choices():
        try:
            vocab = vocab_of(model)
            prompt = prepare_prompt(prompt_midi, None, vocab)
            seconds = prompt.steps * 60.0 / (prompt.tempo_qpm * vocab.config.steps_per_quarter)
        except (MaiaError, OSError):
            seconds = 0.0
        if seconds >= 2:
            rate = (len(prompt.ids) - 2) / seconds
            return (f"{n} tokens ≈ {n / rate:.0f} s of music at the prompt's pace ({rate:.0f} tokens a second); "
                    "denser music takes more tokens a second, sparser fewer")
    lo, mid, hi = CORPUS_TOKENS_PER_SECOND
    return (f"{n} tokens: usually {n / hi:.0f}–{n / lo:.0f} s of music (the corpus's pieces; about {n / mid:.0f} s at "
            "its median pace): denser music takes more tokens a second, sparser fewer")


def register_choices() -> list[tuple[str, int]]:
    """The register's keys for the page's Lowest / Highest key: (note name, MIDI key), A0 (21) to C8 (108)."""
    names = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
    return [(f"{names[k % 12]}{k // 12 - 1}", k) for k in range(PIANO_RANGE[0], PIANO_RANGE[1] + 1)]


def heard_line(model: str, prompt: Prompt, in_view: int, vocab: Vocab) -> str:
    """The notice for a prompt longer than the model's window, in seconds and bars: the model hears its end."""
    spq = vocab.config.steps_per_quarter
    sps = 60.0 / (prompt.tempo_qpm * spq)
    heard = time_steps(prompt.ids[len(prompt.ids) - (in_view - 1):], vocab)  # grid steps in the window
    text = f"{model} hears the last {heard * sps:.0f} s of the prompt's {prompt.steps * sps:.0f} s"
    if prompt.time_signature:
        bar = spq * 4 * prompt.time_signature[0] / prompt.time_signature[1]
        text += f" (about {max(1, round(heard / bar))} of its {math.ceil(prompt.steps / bar)} bars)"
    return text + ": as much music as it holds in mind at once"


# ---- one request ----------------------------------------------------------------------------------
@dataclass
class Output:
    """One variation's files at one moment of the request. ``live`` is the JSON message the page's
    piano roll draws and plays (maia/live.py); the WAV, the PNG roll and the MusicXML come with the last
    update."""

    midi: Path
    live: str = ""
    audio: Path | None = None
    roll: Path | None = None
    musicxml: Path | None = None
    analysis: str = ""


@dataclass
class Update:
    """What the page shows after one streamed step: one Output per variation and a status line."""

    outputs: list[Output]
    status: str
    warnings: list[str] = field(default_factory=list)  # problems, shown once as gr.Warning
    notices: list[str] = field(default_factory=list)  # information, shown once as gr.Info
    done: bool = False


def whole_number(value, what: str) -> int:
    """A setting that counts (tokens, top-k, seed...) as sent by the page or an API client: an int, a float
    with nothing after the point, or digits as text. InputError naming ``what`` for anything else, and for a
    float too large to hold the number exactly (a seed typed as 99999999999999999999999 in the page)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        if abs(value) > 2**53:
            raise InputError(f"{what} is too large: a whole number from 0 to 2**62 - 1, please")
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,30}\s*", value):
        return int(value)
    raise InputError(f"{what} must be a whole number, not {_shown(value)}")


def real_number(value, what: str) -> float:
    """A setting that measures (temperature, strength, density) as sent: a finite number, or one as text."""
    try:
        number = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise InputError(f"{what} must be a number, not {_shown(value)}")
    return number


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def settings(tokens, top_k, temperature, seed, variations) -> SamplingConfig:
    """The page's values (floats from sliders, None from an empty box, anything from an API client) -> a
    validated SamplingConfig; InputError, in one line naming the setting, for a bad one."""
    seed = None if seed is None or seed == "" else whole_number(seed, "seed")
    config = SamplingConfig(max_new_tokens=whole_number(tokens, "tokens"), top_k=whole_number(top_k, "top-k"),
                            temperature=real_number(temperature, "temperature"), seed=seed,
                            variations=whole_number(variations, "variations"))
    return config.validate(LIMITS.max_tokens)


def prepare_prompt(prompt_midi: str | Path | None, composer: str | None, vocab: Vocab) -> Prompt:
    """The uploaded MIDI (or no file) conditioned on ``composer``; InputError for a bad upload."""
    piece = None
    if prompt_midi:
        path = Path(prompt_midi)
        if path.suffix.lower() not in MIDI_SUFFIXES:
            raise InputError(f"{path.name}: upload a MIDI file (.mid or .midi)")
        piece = read_upload(path, vocab)
    return build_prompt(vocab, composer, piece, max_tokens=LIMITS.max_prompt_tokens)


def read_upload(path: Path, vocab: Vocab) -> Piece:
    """A file on the server as a Piece on ``vocab``'s grid, within the server's size and length limits."""
    return read(path, vocab.config, max_bytes=LIMITS.max_input_bytes, max_quarters=LIMITS.max_quarters)


def time_budget() -> float:
    """Seconds one request may take, finishing included (``LIMITS.time_budget``, MAIA_TIME_BUDGET)."""
    return LIMITS.time_budget


class Stops:
    """The page's Stop, per browser session (app.py holds one): it asks the session's compositions to end
    and finish what they made, where cancelling Gradio's event would drop the stream mid-update (no WAV, no
    sheet, a player left waiting, and an "Error" badge on the roll).

    ``arm(session)`` when a composition is asked for (Compose, before the queue), ``running(session)`` around
    it (the event its ``stream`` watches), ``stop(session)`` from the Stop button: it sets the events of the
    session's running compositions, and one still in the queue finds its stop waiting when it starts."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[str, list[threading.Event]] = {}
        self._waiting: set[str] = set()  # sessions whose Stop came while their composition was queued

    def arm(self, session: str | None) -> None:
        """A new composition was asked for: a Stop meant for an earlier one no longer applies."""
        with self._lock:
            self._waiting.discard(session)

    @contextlib.contextmanager
    def running(self, session: str | None) -> Iterator[threading.Event]:
        """The stop event of one composition of ``session`` (None: one nothing can stop but its own end)."""
        event = threading.Event()
        if session is None:
            yield event
            return
        with self._lock:
            if session in self._waiting:
                self._waiting.discard(session)
                event.set()
            self._running.setdefault(session, []).append(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._running.get(session, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._running.pop(session, None)

    def stop(self, session: str | None) -> bool:
        """Stops ``session``'s running compositions (True), or the one it has queued when it starts (False)."""
        with self._lock:
            events = self._running.get(session)
            for event in events or []:
                event.set()
            if not events and session is not None:
                self._waiting.add(session)
            return bool(events)


def _live_view(request: str, variations: int, mine: tuple[int, int], audio: bool, warnings: list[str], turns=None):
    """The request's LiveView (maia/live.py), with audio when asked for and FluidSynth and the SoundFont load;
    otherwise without, and ``warnings`` says why."""
    from maia.live import LiveView
    from maia.synth import INSTALL_HINT, SynthUnavailable, fluidsynth_available

    if audio and not fluidsynth_available():
        warnings.append(f"no audio: {INSTALL_HINT}. The piano roll and the MIDI still work.")
        audio = False
    try:
        return LiveView(request, variations, mine, audio=audio, soundfont=LIMITS.soundfont or None, turns=turns)
    except SynthUnavailable as e:  # FluidSynth loads but the SoundFont does not
        warnings.append(f"no audio: {e}. The piano roll and the MIDI still work.")
        return LiveView(request, variations, mine, audio=False, turns=turns)


def sweep(folder: Path) -> None:
    """Removes the entries of ``folder`` last touched more than ``LIMITS.keep_files`` seconds ago."""
    cutoff = time.time() - LIMITS.keep_files
    for old in folder.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        except OSError:  # another request removed it first
            pass


def new_request_folder() -> Path:
    """A fresh folder for one request's files. Removes the folders of requests older than an hour, so
    that a server running for weeks does not fill its disk (``LIMITS.keep_files``, MAIA_KEEP_FILES: Gradio copies
    the files into its own cache within seconds). ServerError when the temp folder is unwritable."""
    try:
        REQUESTS_DIR.mkdir(exist_ok=True)
        sweep(REQUESTS_DIR)
        return Path(tempfile.mkdtemp(prefix="maia-", dir=REQUESTS_DIR))
    except OSError as e:
        raise _disk_error(e) from None


def _disk_error(e: OSError) -> ServerError:
    return ServerError(f"the server cannot write this piece's files ({e.strerror or type(e).__name__}); "
                       "please try again later")


def finish_seconds(notes: int, variations: int, seconds: float = 0.0) -> float:
    """What finishing is expected to take (MIDI, WAV, PNG roll, MusicXML and engraving), measured on the
    CPU of BENCHMARKS.md: about 0.25 s and 4 ms per note of each variation (music21 dominates), and the WAV's
    rendering, 0.02 s per second of music (``seconds``)."""
    return variations * (FINISH_BASE_SECONDS + FINISH_SECONDS_PER_NOTE * notes + WAV_SECONDS_PER_SECOND * seconds)


KEY_OFF, KEY_OF_PROMPT = "off", "the prompt's key"
PIANO_RANGE = (21, 108)  # A0..C8: a register control at these bounds is no control


def key_choices() -> list[str]:
    """The key-lock dropdown: off, the prompt's key, then the 24 keys."""
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    return [KEY_OFF, KEY_OF_PROMPT] + [f"{n} {m}" for m in ("major", "minor") for n in names]


def steering(key, key_strength, lowest, highest, density, prompt: Prompt, vocab: Vocab):
    """The page's steering settings -> maia.controls.Controls (None when all are off); InputError for a
    bad one. ``key`` is KEY_OFF, KEY_OF_PROMPT (Krumhansl-Schmuckler on the prompt) or a key name."""
    from maia.controls import Controls, parse_key
    from maia.metrics import estimate_key

    strength, dens = real_number(key_strength, "key strength"), real_number(density, "density")
    lo, hi = whole_number(lowest, "lowest key"), whole_number(highest, "highest key")
    lock = None
    if key and key != KEY_OFF:
        if key == KEY_OF_PROMPT:
            if len(prompt.ids) <= 2:
                raise InputError("the prompt's key needs a prompt: upload a MIDI file or pick a key")
            tonic, mode, _ = estimate_key(ids_to_piece(prompt.ids, vocab, prompt))
            lock = (tonic, mode) if tonic >= 0 else None
        else:
            lock = parse_key(str(key))
    lo_, hi_ = (None if lo <= PIANO_RANGE[0] else lo), (None if hi >= PIANO_RANGE[1] else hi)
    controls = Controls(key=lock, key_strength=strength, lowest=lo_, highest=hi_, density=dens).validate()
    return controls if controls.active else None


FORMS = ("none", "ABA", "AABA", "rondo")  # the page's Form dropdown (maia/form.py plans any letters from A)
LENGTH_UNITS = ("bars", "seconds", "tokens")  # the page's length control
ENDING_CANDIDATES = 4  # endings written per variation; the model's likeliest is kept (maia/form.py)
KEY_CANDIDATES = 3  # with End, continuations sampled per variation (as rows allow); the first in the home key is
#                     kept: the Lacrimosa in D minor or F major in 9 of 10 seeds, 6-7 with one (docs/models.md)
SHAPING_SECONDS_PER_TOKEN = 0.003  # form and ending, per token of a variation: 6.6 s for the Lacrimosa's 2,700
#                                    tokens (8 + 22 bars, ABA, ending) on one thread of a 2-core CPU


def length_settings(bars, seconds, end, form_name) -> tuple[int | None, float | None, bool, str | None]:
    """The length, ending and form as sent by the page or an API client -> (bars, seconds, end, form), with
    None for no bars, no seconds, no form; InputError in one line for a bad value or a form or an ending
    without a length."""
    bars = None if bars is None or bars == "" else whole_number(bars, "bars")
    seconds = None if seconds is None or seconds == "" else real_number(seconds, "seconds")
    if isinstance(end, str) and end.strip().lower() in ("true", "false", "1", "0", ""):
        end = end.strip().lower() in ("true", "1")
    if end is None or (isinstance(end, int) and end in (0, 1)):  # (True and False are ints)
        end = bool(end)
    else:
        raise InputError(f"end must be true or false, not {_shown(end)}")
    if form_name is not None and not isinstance(form_name, str):
        raise InputError(f"form must be a name such as ABA, AABA or rondo, not {_shown(form_name)}")
    form_name = None if form_name is None or form_name.strip().lower() in ("", "none") else form_name.strip()
    if bars is None and seconds is None and (end or form_name):
        asked = "an ending in the home key" if end else f"form {form_name}"
        raise InputError(f"{asked} needs a length: give it in bars (or seconds)")
    return bars, seconds, end, form_name


def whole_piece(net, vocab: Vocab, prompt: Prompt, config: SamplingConfig, bars: int | None, seconds: float | None,
                end: bool, form_name: str | None, controls=None, key_candidates: int = KEY_CANDIDATES) -> Composition:
    """The page's composition: ``config.max_new_tokens`` tokens after ``prompt``, or (``bars`` or ``seconds``) a
    whole piece of that length planned by maia.form.layout, each variation sampling up to ``key_candidates``
    continuations with an ending (maia.compose.Composition.continuation); InputError for a form that does not
    fit."""
    return Composition.continuation(net, vocab, prompt, config, bars, seconds, end, form_name, 4, controls,
                                    key_candidates, max_tokens=LIMITS.max_tokens)


def shaping_seconds(comp: Composition, tokens: int) -> float:
    """Seconds finishing ``comp`` (the theme's return, the ending) is expected to take, at ``tokens`` per row."""
    return SHAPING_SECONDS_PER_TOKEN * tokens * comp.variations if comp.shaped else 0.0


def shaping_line(comp: Composition, pieces: list[Piece]) -> str:
    """What finishing is about to do, for the status line."""
    parts = [f"bringing the theme back ({comp.form})"] if comp.lay.sections is not None else []
    if comp.lay.end:
        keys = {comp.key(p) for p in pieces}
        name = outputs.key_label(next(iter(keys))) if len(keys) == 1 else "each one's home key"
        parts.append(f"writing the ending in {name}")
    return " and ".join(parts) + "…"


def chosen_line(comp: Composition, picks: list[int]) -> str:
    """The status line's word on a key candidate kept other than the first (the one shown while sampling)."""
    return "".join(f" · variation {i + 1} kept continuation {c + 1} of {comp.candidates}, the first in the home key"
                   for i, c in enumerate(picks) if c)


def page_length(unit, length, end, form_name) -> tuple:
    """The page's length control (``unit`` one of LENGTH_UNITS, and a number) with its End and Form -> the
    (bars, seconds, end, form) ``stream`` takes; in tokens (the tokens setting) there is no end or form."""
    if unit not in LENGTH_UNITS:
        raise InputError(f"the length is in {', '.join(LENGTH_UNITS)}, not {_shown(unit)}")
    if unit == "tokens":
        return None, None, False, None
    if length is None or length == "":
        raise InputError(f"give the length in {unit}")
    return (length, None, end, form_name) if unit == "bars" else (None, length, end, form_name)


def stream(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key=KEY_OFF,
           key_strength=1.0, lowest=PIANO_RANGE[0], highest=PIANO_RANGE[1], density=1.0, bars=None, seconds=None,
           end=False, form=None, *, interval: float = UPDATE_INTERVAL, audio: bool = True,
           budget: float | None = None, stop: threading.Event | None = None,
           key_candidates: int = KEY_CANDIDATES) -> Iterator[Update]:
    """Composes and streams: yields an Update at once when there is a prompt (else after 0.2 s of
    sampling), then about every ``interval`` seconds, then the finished files. The whole request keeps
    to ``budget`` seconds (default: time_budget()): sampling stops early enough for the finishing, and
    the sheet music is left out when even that would not fit. ``key``, ``key_strength``, ``lowest``,
    ``highest`` and ``density`` steer the sampling (``steering``, maia/controls.py). Once ``stop`` is set
    (the page's Stop, through ``Stops``) sampling ends and what was made is finished like a whole piece.

    ``bars`` (or ``seconds``) sets the length instead of ``tokens``: every variation composes exactly that
    span after the prompt, in its metre, and releases every key on the last bar line. Then, with ``end``, it
    closes with a cadence in the home key (the key lock's, else the prompt's), and with ``form`` (ABA, AABA,
    rondo or other letters from A) the prompt's opening bars come back (maia/form.py; with the model in this
    process, a few seconds, said in the status line). With ``end`` and a prompt, each variation samples up to
    ``key_candidates`` continuations in the same batch; the first is shown and played while they are sampled
    (the audio waits at the prompt's end), and the first that stays in the home key is kept, which the status
    line says when it is not the one shown. Raises InputError for a bad request."""
    started = time.monotonic()
    budget = time_budget() if budget is None else budget
    deadline = started + budget
    config = settings(tokens, top_k, temperature, seed, variations)
    bars, seconds, end, form = length_settings(bars, seconds, end, form)
    net, vocab = load(model)
    prompt = prepare_prompt(prompt_midi, composer, vocab)
    controls = steering(key, key_strength, lowest, highest, density, prompt, vocab)
    comp = whole_piece(net, vocab, prompt, config, bars, seconds, end, form, controls, key_candidates)
    folder = new_request_folder()
    warnings = [prompt.message] if prompt.message else []
    notices = []
    in_view = prompt_tokens_in_view(net, len(prompt.ids), comp.config)
    if in_view < len(prompt.ids):  # information, not a problem: the model reads the prompt's end
        notices.append(heard_line(model, prompt, in_view, vocab))
    steps = _steps(model, comp)  # a sampler process starts at once, while FluidSynth loads
    live = _live_view(folder.name, comp.variations, (prompt.steps, FOREVER), audio, warnings)
    length = None if comp.lay is None else f"{bars} bars" if bars is not None else f"{float(seconds):g} s"
    job = _Job(steps=steps, comp=comp, model=model, title=f"maia — {prompt.composer}", mine=(prompt.steps, FOREVER),
               key=controls.key if controls is not None and controls.key_strength > 0 else None, stop=stop,
               ended=f"composed its {length}" if length else "reached the end of the piece")
    try:
        yield from _drive(job, folder, live, deadline, interval, warnings, notices)
    finally:  # also when the client goes away mid-stream (Gradio closes the generator)
        live.close()


def regenerate(source_midi, from_beat, to_beat, composer, model, top_k, temperature, seed, *,
               interval: float = UPDATE_INTERVAL, audio: bool = True, budget: float | None = None,
               stop: threading.Event | None = None) -> Iterator[Update]:
    """Rewrites the passage of ``source_midi`` between two quarter-note beats with a fill-in-the-middle
    model and streams it like ``stream`` (one variation): everything before and after the passage is
    kept bit for bit (maia/infill.py). Raises InputError for a bad request (no file, a span outside
    the music, a model without fill-in-the-middle). ``stop``: as for ``stream``."""
    from maia.generate import resolve_composer
    from maia.infill import beats_to_steps

    started = time.monotonic()
    budget = time_budget() if budget is None else budget
    deadline = started + budget
    if not source_midi:
        raise InputError("nothing to regenerate yet: compose or upload something first")
    net, vocab = load(model)
    if not vocab.fim:
        raise InputError(f"the {model} model was not trained to fill in the middle; choose another model")
    path = Path(source_midi)
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise InputError(f"{path.name}: regenerate works on a MIDI file (.mid or .midi)")
    piece = read_upload(path, vocab)
    try:
        from_beat, to_beat = float(from_beat), float(to_beat)
    except (TypeError, ValueError):
        raise InputError("from and to must be beats (numbers)") from None
    start, end = beats_to_steps(piece, from_beat, to_beat)
    name = resolve_composer(vocab, composer)
    comp = Composition.passage(net, vocab, piece, start, end, name, settings(PASSAGE_TOKENS, top_k, temperature, seed, 1))
    folder = new_request_folder()
    warnings = []
    steps = _steps(model, comp)  # (started before FluidSynth loads, as in stream)
    live = _live_view(folder.name, 1, (start, end), audio, warnings)
    job = _Job(steps=steps, comp=comp, model=model,
               title=f"maia — {name}, beats {float(from_beat):g}–{float(to_beat):g} regenerated", mine=(start, end),
               stop=stop, ended="filled the passage: the music after it follows unchanged")
    try:
        yield from _drive(job, folder, live, deadline, interval, warnings, [])
    finally:
        live.close()


def show(entry: dict | None) -> Update:
    """A history entry ({"midi": path, "mine_s": [from, to] seconds of maia's notes, "status"}; a duet's also
    "turns_s": maia's answers, [[from, to], ...] seconds) as a finished update, as if just composed: the roll's
    message with all the audio and the sheet music, the files and the analysis line. InputError when its file
    is gone."""
    if not entry or not Path(entry["midi"]).is_file():
        raise InputError("that piece is no longer on the server (pieces are kept for an hour)")
    piece = read(entry["midi"])  # a file this server wrote
    folder = new_request_folder()
    sps = piece.seconds_per_step
    mine = (round(entry["mine_s"][0] / sps), round(entry["mine_s"][1] / sps) + 1)
    turns = [(round(a / sps), round(b / sps)) for a, b in entry["turns_s"]] if entry.get("turns_s") else None
    live = _live_view(folder.name, 1, mine, True, [], turns)
    title = "A duet with maia" if turns else "maia"
    done = Composition(None, None, SamplingConfig(max_new_tokens=1), "", [[]], lambda _ids: piece,
                       lambda _ids: piece.end_step)  # nothing to sample: the piece as it is
    job = _Job(steps=iter([]), comp=done, model="history", title=title,
               mine=(turns[0][0], FOREVER) if turns else mine)  # the PNG roll: your first phrase blue
    try:
        update = list(_drive(job, folder, live, time.monotonic() + time_budget(), UPDATE_INTERVAL, [], []))[-1]
    finally:
        live.close()
    update.status = entry.get("status", "")
    return update


def finish_duet(data: str | None, turns_s) -> Update:
    """A duet ended on the page (maia/web/keys.js sends the dialogue as a base64 Standard MIDI File, and maia's
    answers as [[from, to], ...] seconds) -> the page's current piece, finished as a composition is (``show``:
    the roll with your notes and maia's, the audio, the sheet music, the files), for the history to remember.
    InputError for nothing played, bad base64, a file the reader refuses or bad spans."""
    nothing = "the duet has no notes yet: play a phrase and let maia answer"
    path = _page_midi(data, "duet.mid", nothing, nothing)
    if not isinstance(turns_s, list) or not turns_s or len(turns_s) > 1024:
        raise InputError("the duet did not say when maia played: end it again")
    try:
        turns = [(real_number(a, "a turn's start"), real_number(b, "a turn's end")) for a, b in turns_s]
    except (TypeError, ValueError):
        raise InputError("the duet did not say when maia played: end it again") from None
    n = len(turns)
    return show({"midi": path, "mine_s": [turns[0][0], turns[-1][1]], "turns_s": turns,
                 "status": f"a duet of {n} turn{'s' if n > 1 else ''}: your phrases in blue, maia's answers in orange"})


# ---- permalinks: the page's settings in a URL's query string ----------------------------------------
LINK_FIELDS = ("composer", "model", "tokens", "top_k", "temperature", "seed", "variations", "key", "key_strength",
               "lowest", "highest", "density", "length_unit", "length", "end", "form")
UPLOADS_DIR = Path(tempfile.gettempdir()) / "maia-links"  # uploads named in links, by content hash


def permalink(base_url: str, prompt_midi, values: dict) -> str:
    """A link that restores the page: the settings, and the prompt as an example's name or, for an
    upload, the hash of its content (kept in UPLOADS_DIR for ``LIMITS.keep_files``, swept as request folders are)."""
    import hashlib
    from urllib.parse import urlencode

    query = {k: values[k] for k in LINK_FIELDS if values.get(k) not in (None, "")}
    if prompt_midi:
        path = Path(prompt_midi)
        examples = {p.name: p for p in example_prompts()}
        if path.name in examples and path.read_bytes() == examples[path.name].read_bytes():
            query["example"] = path.name
        else:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:32]
            UPLOADS_DIR.mkdir(parents=True, exist_ok=True)
            sweep(UPLOADS_DIR)  # links older than the request folders' lifetime lose their upload
            (UPLOADS_DIR / digest).mkdir(exist_ok=True)  # the file keeps its name, in its hash's folder
            (UPLOADS_DIR / digest / _safe_name(path.name)).write_bytes(data)
            os.utime(UPLOADS_DIR / digest)  # a link made again keeps its upload as long again
            query["upload"] = digest
    return base_url.split("?")[0] + "?" + urlencode(query)


def from_link(query: dict) -> dict:
    """The page's values from a permalink's query (unknown keys ignored; a bad value is left out); the
    prompt under "prompt_midi" (an example's path or a linked upload's), if the link names one."""
    import re

    out = {}
    for k in LINK_FIELDS:
        if k in query:
            v = str(query[k])
            if k in ("tokens", "top_k", "seed", "variations", "lowest", "highest"):
                if re.fullmatch(r"\d{1,9}", v):
                    out[k] = int(v)
            elif k in ("temperature", "key_strength", "density", "length"):
                if re.fullmatch(r"\d{1,3}(\.\d{1,6})?", v):  # plain decimals: no nan, inf or exponents
                    out[k] = float(v)
            elif k == "end":
                if v.lower() in ("true", "false", "1", "0"):
                    out[k] = v.lower() in ("true", "1")
            elif k == "length_unit":
                if v in LENGTH_UNITS:
                    out[k] = v
            elif k == "form":
                if re.fullmatch(r"[A-Za-z]{1,12}", v):  # letters (maia.form.plan checks them when composing)
                    out[k] = v
            else:
                out[k] = v[:64]
    examples = {p.name: p for p in example_prompts()}
    if query.get("example") in examples:
        out["prompt_midi"] = str(examples[query["example"]])
    elif re.fullmatch(r"[0-9a-f]{32}", str(query.get("upload", ""))):
        folder = UPLOADS_DIR / query["upload"]
        named = sorted(folder.iterdir()) if folder.is_dir() else []
        if named:
            out["prompt_midi"] = str(named[0])
        elif (UPLOADS_DIR / f"{query['upload']}.mid").is_file():  # a link made before uploads kept their names
            out["prompt_midi"] = str(UPLOADS_DIR / f"{query['upload']}.mid")
    if "composer" in out:  # only a composer the link's model (or the default one) knows
        model = out.get("model") if out.get("model") in model_choices() else next(iter(model_choices()), None)
        if out["composer"] not in [value for _, value in composer_choices(model)]:
            del out["composer"]
    return out


def _safe_name(name: str) -> str:
    """An uploaded file's name, fit to be a file name here: letters, digits, ``._- ``; a MIDI suffix."""
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    stem = re.sub(r"[^\w.\- ]", "_", stem).strip(" .")[:80] or "upload"
    return stem + (suffix if suffix in MIDI_SUFFIXES else ".mid")


# ---- history: per session (app.py keeps it in a gr.State), never global --------------------------------
def new_history() -> dict:
    return {"items": [], "at": -1}


def remember(history: dict | None, live: str, files, status: str) -> dict:
    """The history with variation 1's finished piece added after the current entry (a new piece after
    an undo drops the undone ones, as editors do); unchanged when nothing finished."""
    import json

    history = history or new_history()
    try:
        message = json.loads(live) if live else None
    except ValueError:
        message = None
    midi = next((str(f) for f in files or [] if str(f).endswith(".mid")), None)
    if not message or not message.get("done") or midi is None:
        return history
    entry = {"midi": midi, "mine_s": message["mine"], "status": status}
    if message.get("turns"):  # a duet: maia's answers between your phrases
        entry["turns_s"] = message["turns"]
    items = [*history["items"][:history["at"] + 1], entry]
    items = items[-HISTORY_LENGTH:]
    return {"items": items, "at": len(items) - 1}


def step_history(history: dict | None, delta: int) -> tuple[dict, dict | None]:
    """Undo (delta -1) or redo (+1): the moved history and the entry to show (None at either end)."""
    history = history or new_history()
    at = history["at"] + delta
    if not 0 <= at < len(history["items"]):
        return history, None
    return {**history, "at": at}, history["items"][at]


@dataclass
class _Job:
    """What one request samples and how its tokens become music: the continuation of a prompt (``stream``)
    or the middle of a span (``regenerate``). ``_drive`` runs either."""

    steps: Iterator  # maia.generate's per-step token lists, for comp's rows
    comp: Composition  # the rows, how they become music, and how it is finished (maia/compose.py)
    model: str
    title: str  # of the sheet music
    mine: tuple[int, int]  # grid steps whose notes the user wrote (the prompt) or maia wrote (a span)
    key: tuple[int, str] | None = None  # a key lock: the key the line names and the sheet notates
    stop: threading.Event | None = None  # set: sampling ends, and what was made is finished (the page's Stop)
    ended: str = "reached the end of the piece"  # what the status line says of a row that sampled its stop_id


def _drive(job: _Job, folder: Path, live, deadline: float, interval: float, warnings, notices) -> Iterator[Update]:
    """``_stream``, with a disk that fails (full, unwritable) as a ServerError: one line for the user."""
    try:
        yield from _stream(job, folder, live, deadline, interval, warnings, notices)
    except OSError as e:
        raise _disk_error(e) from None
    finally:  # finished, failed or cancelled: the sampling stops, what the request freed goes back to the system
        if hasattr(job.steps, "close"):
            job.steps.close()
        memory.trim()


def _stream(job: _Job, folder: Path, live, deadline: float, interval: float, warnings, notices) -> Iterator[Update]:
    comp = job.comp
    config, variations = comp.config, comp.variations  # shown; comp.rows may hold key candidates after them
    made = 0  # steps sampled so far (new tokens per variation)
    sampling = 0.0  # seconds spent sampling, for the status line's tokens/s
    heard = 0.0  # seconds of music at the last update: the WAVs to render (finish_seconds)

    def snapshot(k: int, ps: list[Piece] | None = None) -> Update:
        sub = folder / f"u{k:04d}"
        sub.mkdir(exist_ok=True)
        nonlocal heard
        ps = comp.pieces() if ps is None else ps
        now = comp.positions()
        heard = max(p.duration_seconds for p in ps)
        hold = comp.hold  # finishing may change the music after it: the audio waits there
        messages = live.update(ps, now, heard=None if hold is None else [min(n, hold) for n in now])
        outs = [Output(midi=p.write_midi(sub / f"maia-{i + 1}.mid"), live=m,
                       analysis=f"{len(p)} notes · {p.duration_seconds:.1f} s")
                for i, (p, m) in enumerate(zip(ps, messages, strict=True))]
        if k >= 2:  # Gradio has copied update k-2's files into its cache by now
            shutil.rmtree(folder / f"u{k - 2:04d}", ignore_errors=True)
        first = k == 0
        return Update(outs, _status(made, config, comp.ended, sampling, job.model, job.ended),
                      warnings if first else [], notices if first else [])

    def tokens() -> int:
        return max(len(ids) for ids in comp.rows)

    k = 0
    if comp.base > 2:  # show the music there is right away: the first update of the click
        yield snapshot(k)
        k += 1
    next_at = time.monotonic() + (interval if k else min(interval, FIRST_UPDATE))
    out_of_time = stopped = False
    steps = comp.run(job.steps)
    while True:
        if job.stop is not None and job.stop.is_set():
            stopped = True  # a normal end: what was made is finished as a whole piece
            break
        if time.monotonic() + finish_seconds(tokens() // 2, variations, heard) + shaping_seconds(comp, tokens()) \
                > deadline:  # ~2 tokens a note
            out_of_time = True  # keep what was made, and the time to finish it
            break
        t0 = time.monotonic()
        step = next(steps, None)
        sampling += time.monotonic() - t0
        if step is None:
            break
        made += 1
        if time.monotonic() >= next_at:
            yield snapshot(k)
            k += 1
            next_at = time.monotonic() + interval
    if hasattr(job.steps, "close"):  # a generator: release the model's cache now
        job.steps.close()

    # A set length: the key candidate is chosen, the theme comes back and the piece ends in its home key
    # (maia/compose.py), with the model in this process, while the page shows the music and says what is written.
    final = comp.pieces()
    endings = [None] * len(final)  # the home key each variation was made to end in (with End)
    shaped = ""
    if comp.shaped:
        if stopped or out_of_time:
            shaped = " · no ending: the music stopped before its last bar"
        elif time.monotonic() + shaping_seconds(comp, tokens()) + finish_seconds(tokens() // 2, variations, heard) \
                > deadline:
            shaped = " · no ending: no time was left to write it"
        else:
            final, picks = comp.choose()
            update = snapshot(k, final)
            k += 1
            update.status += " · " + shaping_line(comp, final)
            yield update
            final, endings = map(list, zip(*comp.shape(final, ENDING_CANDIDATES), strict=True))
            endings = [None if e is None else e.key for e in endings]
            said = [f"form {comp.form}"] if comp.lay.sections is not None else []
            if comp.lay.end:
                said.append("ends in " + " / ".join(dict.fromkeys(outputs.key_label(k) for k in endings if k)))
            shaped = " · " + ", ".join(said) + chosen_line(comp, picks)

    # The music is complete: MIDI, the audio as heard, the key. It goes out at once; the sheet music
    # (music21 and Verovio, seconds for a long piece) follows in one more update.
    # The WAV, with audio on, is rendered again as the CLI's (maia.outputs, 44.1 kHz, one level rule), not
    # taken from the live stream (its own rate and fixed gain).
    outs = []
    for i, piece in enumerate(final):
        wav = folder / f"maia-{i + 1}.wav" if live.players else None
        files = outputs.write(piece, midi=folder / f"maia-{i + 1}.mid", wav=wav, soundfont=LIMITS.soundfont or None,
                              key=job.key, ending=endings[i])
        outs.append(Output(midi=files.midi, audio=files.audio, analysis=files.analysis))
    messages = live.finish(final)
    for out, message in zip(outs, messages, strict=True):
        out.live = message
    status = "done: " + _status(made, config, comp.ended, sampling, job.model, job.ended) + shaped
    if stopped:
        status += " · stopped: the music made so far is the piece"
    warned = []
    if out_of_time:
        status += " · stopped at the time limit"
        warned.append(f"stopped at the time limit of one request ({time_budget():g} s): kept {made} of "
                      f"{config.max_new_tokens} tokens")
    if k == 0:  # the first update of the request: say it all now
        warned[:0] = warnings
    yield Update(outs, status + " · writing the sheet music…", warned, notices if k == 0 else [])

    late = False
    sheets = []
    outs = [replace(o) for o in outs]  # the update above stays as it was sent
    for i, (piece, out) in enumerate(zip(final, outs, strict=True)):
        sheet = None
        if time.monotonic() + finish_seconds(len(piece), 1) < deadline:  # only a sheet that fits (its WAV is made)
            seed = config.seed if config.seed is not None else "random"
            sheet = _finish(piece, out, job.mine, job.title, f"model {job.model}, seed {seed}, variation {i + 1}",
                            job.key)
        else:
            late = True
        sheets.append(sheet)
    for out, message in zip(outs, live.notated([o.live for o in outs], sheets), strict=True):
        out.live = message
    update = Update(outs, status, done=True)
    if late:
        update.warnings.append("no sheet music: the request ran out of time; the MIDI and the audio are complete")
    yield update


def _finish(piece: Piece, out: Output, mine: tuple[int, int], title: str, subtitle: str,
            key: tuple[int, str] | None = None) -> dict | None:
    """Adds the piano roll PNG and the MusicXML grand staff (maia/outputs.py) to a finished variation;
    returns its engraved pages with their timemap (None when music21 or Verovio cannot notate it)."""
    from maia.notation import sheet

    files = outputs.write(piece, roll=out.midi.with_name(out.midi.stem + "-roll.png"),
                          musicxml=out.midi.with_suffix(".musicxml"), title=title, subtitle=subtitle,
                          prompt_steps=mine[0], key=key)
    out.roll, out.musicxml = files.roll, files.musicxml
    if files.xml is None:
        return None
    try:
        return sheet(files.xml, seconds_per_quarter=piece.seconds_per_step * piece.steps_per_quarter)
    except Exception:  # Verovio raises on odd music; the MusicXML and the MIDI stay usable
        return None


def _status(made: int, config: SamplingConfig, ended: list[bool], sampling: float, model: str,
            ending: str = "reached the end of the piece") -> str:
    rate = made / sampling if sampling > 0 else 0.0
    text = f"{made}/{config.max_new_tokens} tokens · sampled at {rate:.0f} tokens/s · {model} on {device()}"
    finished = [str(i + 1) for i, e in enumerate(ended) if e]
    if finished:
        text += f" · variation {', '.join(finished)} {ending}"
    return text


def continue_from(midi: str | Path | None) -> str:
    """A finished variation's MIDI as the next prompt."""
    if not midi:
        raise InputError("nothing to continue yet: compose something first")
    return str(midi)


def played_prompt(data: str | None) -> str:
    """A phrase played on the page (maia/web/keys.js writes it as a Standard MIDI File, base64) as a prompt:
    written to a fresh request folder as ``played.mid`` and read back within the same limits as an upload, so
    compose, continue, regenerate and permalinks take it as they take an uploaded file. InputError for
    nothing played, bad base64 or a file the reader refuses."""
    return str(_page_midi(data, "played.mid", "nothing was played: press Record, play, then Stop",
                          "the recording holds no notes: press Record, play, then Stop"))


def _page_midi(data: str | None, name: str, nothing: str, empty: str) -> Path:
    """A Standard MIDI File the page wrote (base64) in a fresh request folder as ``name``, checked by reading it
    back within an upload's limits; InputError ``nothing`` when none came, ``empty`` when it holds no notes."""
    text = (data or "").strip()
    if not text:
        raise InputError(nothing)
    if len(text) > LIMITS.max_input_bytes * 4 // 3 + 4:  # the decoded file would be over the upload limit
        raise InputError(f"the recording is too long (over {LIMITS.max_input_bytes // 1024} KiB of MIDI)")
    try:
        midi = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("the recording did not arrive whole (bad base64); please record again") from None
    path = new_request_folder() / name
    try:
        path.write_bytes(midi)
    except OSError as e:
        raise _disk_error(e) from None
    piece = read(path, EncodingConfig(), max_bytes=LIMITS.max_input_bytes, max_quarters=LIMITS.max_quarters)
    if not len(piece.notes):
        raise InputError(empty)
    return path
