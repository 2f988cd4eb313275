"""The playground's logic: what app.py's buttons do, as plain functions (app.py itself is only the page).

    for update in stream(prompt_midi="x.mid", composer="bach", model="piano", tokens=512, top_k=5,
                         temperature=1.0, seed=1, variations=2):
        update.outputs[0].live, update.outputs[0].midi, ...   # the music so far

Every function here that depends on the server takes ``serving`` (maia/serving.py: the limits, the models,
the sampler processes, the folders), default ``Serving.default()``. Models load once per Serving
(``serving.load``) from the operator's folder (assets/models/ or $MAIA_MODELS_DIR), by name only: a request
can never point at a path. Every request writes into its own folder (``serving.new_request_folder``), and every
update into a subfolder of it, so no two requests or updates share a file name.

While tokens are sampled, ``stream`` yields about every half second the MIDI so far and, for the page's
piano roll, a JSON message with the notes and the audio rendered since the last update (maia/live.py:
FluidSynth on a worker thread, appended, so listening starts with the first notes and never restarts).
The last update adds the WAV (the audio as heard), the PNG roll, the MusicXML with its engraved pages,
and the analysis line (maia/outputs.py, as the CLI writes them). Each request has a time budget
(``serving.time_budget()``, MAIA_TIME_BUDGET, 120 s) that covers the finishing too: sampling stops when what
is left would not fit, and the music made so far is finished.

A server (``serving.start()``) samples in processes of its own (maia/sampler.py, ``limits.sampling``), one per
concurrent request, so that the sampling never waits for the GIL while Gradio, the audio and the updates run;
called as a library, ``stream`` samples in the caller's thread.

The page's settings are checked in maia/options.py, its undo history is maia/history.py and its permalinks
maia/permalinks.py. This file is over 300 lines because of the request driver (``stream``, ``regenerate``,
``_drive``, ``_stream``), which is to go on folding into maia/compose.py's composition object.
"""

from __future__ import annotations

import base64
import binascii
import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from maia import memory, outputs
from maia.compose import PASSAGE_TOKENS, Composition
from maia.encoding import MIDI_SUFFIXES, Piece, read
from maia.errors import InputError, MaiaError
from maia.generate import Prompt, SamplingConfig, build_prompt, prompt_tokens_in_view, time_steps
from maia.live import FOREVER
from maia.options import KEY_OFF, PIANO_RANGE, length_settings, real_number, settings, steering, whole_number
from maia.serving import Serving
from maia.serving import disk_error as _disk_error
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


def example_prompts() -> list[Path]:
    """The MIDI files in assets/prompts/, the Lacrimosa first."""
    files = sorted(p for p in PROMPTS_DIR.glob("*") if p.suffix.lower() in MIDI_SUFFIXES) if PROMPTS_DIR.is_dir() else []
    return sorted(files, key=lambda p: p != LACRIMOSA)


def length_hint(tokens, prompt_midi=None, model: str | None = None, serving: Serving | None = None) -> str:
    """How much music ``tokens`` new tokens make, honestly: at the prompt's own pace (its tokens per second, in
    ``model``'s vocabulary) when there is a prompt, else the range of the corpus's paces. A token is a note, a
    wait or a velocity change, so a second of dense music takes several times the tokens of a sparse one."""
    serving = serving or Serving.default()
    try:
        n = whole_number(tokens, "tokens")
    except InputError:
        return ""
    if prompt_midi and model in serving.model_choices():
        try:
            vocab = serving.vocab_of(model)
            prompt = prepare_prompt(prompt_midi, None, vocab, serving)
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


def prepare_prompt(prompt_midi: str | Path | None, composer: str | None, vocab: Vocab,
                   serving: Serving | None = None) -> Prompt:
    """The uploaded MIDI (or no file) conditioned on ``composer``; InputError for a bad upload."""
    limits = (serving or Serving.default()).limits
    piece = None
    if prompt_midi:
        path = Path(prompt_midi)
        if path.suffix.lower() not in MIDI_SUFFIXES:
            raise InputError(f"{path.name}: upload a MIDI file (.mid or .midi)")
        piece = read_upload(path, vocab, serving)
    return build_prompt(vocab, composer, piece, max_tokens=limits.max_prompt_tokens)


def read_upload(path: Path, vocab: Vocab, serving: Serving | None = None) -> Piece:
    """A file on the server as a Piece on ``vocab``'s grid, within the server's size and length limits."""
    limits = (serving or Serving.default()).limits
    return read(path, vocab.config, max_bytes=limits.max_input_bytes, max_quarters=limits.max_quarters)


def _live_view(request: str, variations: int, mine: tuple[int, int], audio: bool, warnings: list[str], turns=None,
               soundfont: str = ""):
    """The request's LiveView (maia/live.py), with audio when asked for and FluidSynth and ``soundfont`` (""
    for maia.synth's lookup) load; otherwise without, and ``warnings`` says why."""
    from maia.live import LiveView
    from maia.synth import INSTALL_HINT, SynthUnavailable, fluidsynth_available

    if audio and not fluidsynth_available():
        warnings.append(f"no audio: {INSTALL_HINT}. The piano roll and the MIDI still work.")
        audio = False
    try:
        return LiveView(request, variations, mine, audio=audio, soundfont=soundfont or None, turns=turns)
    except SynthUnavailable as e:  # FluidSynth loads but the SoundFont does not
        warnings.append(f"no audio: {e}. The piano roll and the MIDI still work.")
        return LiveView(request, variations, mine, audio=False, turns=turns)


def finish_seconds(notes: int, variations: int, seconds: float = 0.0) -> float:
    """What finishing is expected to take (MIDI, WAV, PNG roll, MusicXML and engraving), measured on the
    CPU of BENCHMARKS.md: about 0.25 s and 4 ms per note of each variation (music21 dominates), and the WAV's
    rendering, 0.02 s per second of music (``seconds``)."""
    return variations * (FINISH_BASE_SECONDS + FINISH_SECONDS_PER_NOTE * notes + WAV_SECONDS_PER_SECOND * seconds)


ENDING_CANDIDATES = 4  # endings written per variation; the model's likeliest is kept (maia/form.py)
KEY_CANDIDATES = 3  # with End, continuations sampled per variation (as rows allow); the first in the home key is
#                     kept: the Lacrimosa in D minor or F major in 9 of 10 seeds, 6-7 with one (docs/models.md)
SHAPING_SECONDS_PER_TOKEN = 0.003  # form and ending, per token of a variation: 6.6 s for the Lacrimosa's 2,700
#                                    tokens (8 + 22 bars, ABA, ending) on one thread of a 2-core CPU


def whole_piece(net, vocab: Vocab, prompt: Prompt, config: SamplingConfig, bars: int | None, seconds: float | None,
                end: bool, form_name: str | None, controls=None, key_candidates: int = KEY_CANDIDATES,
                serving: Serving | None = None) -> Composition:
    """The page's composition: ``config.max_new_tokens`` tokens after ``prompt``, or (``bars`` or ``seconds``) a
    whole piece of that length planned by maia.form.layout, each variation sampling up to ``key_candidates``
    continuations with an ending (maia.compose.Composition.continuation); InputError for a form that does not
    fit."""
    return Composition.continuation(net, vocab, prompt, config, bars, seconds, end, form_name, 4, controls,
                                    key_candidates, max_tokens=(serving or Serving.default()).limits.max_tokens)


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


def stream(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key=KEY_OFF,
           key_strength=1.0, lowest=PIANO_RANGE[0], highest=PIANO_RANGE[1], density=1.0, bars=None, seconds=None,
           end=False, form=None, *, interval: float = UPDATE_INTERVAL, audio: bool = True,
           budget: float | None = None, stop: threading.Event | None = None,
           key_candidates: int = KEY_CANDIDATES, serving: Serving | None = None) -> Iterator[Update]:
    """Composes and streams: yields an Update at once when there is a prompt (else after 0.2 s of
    sampling), then about every ``interval`` seconds, then the finished files. The whole request keeps
    to ``budget`` seconds (default: ``serving.time_budget()``): sampling stops early enough for the finishing, and
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
    line says when it is not the one shown. Raises InputError for a bad request.

    ``serving``: the server's limits, models, sampler processes and folders (maia/serving.py; default:
    ``Serving.default()``)."""
    serving = serving or Serving.default()
    started = time.monotonic()
    budget = serving.time_budget() if budget is None else budget
    deadline = started + budget
    config = settings(tokens, top_k, temperature, seed, variations, serving.limits.max_tokens)
    bars, seconds, end, form = length_settings(bars, seconds, end, form)
    net, vocab = serving.load(model)
    prompt = prepare_prompt(prompt_midi, composer, vocab, serving)
    controls = steering(key, key_strength, lowest, highest, density, prompt, vocab)
    comp = whole_piece(net, vocab, prompt, config, bars, seconds, end, form, controls, key_candidates, serving)
    folder = serving.new_request_folder()
    warnings = [prompt.message] if prompt.message else []
    notices = []
    in_view = prompt_tokens_in_view(net, len(prompt.ids), comp.config)
    if in_view < len(prompt.ids):  # information, not a problem: the model reads the prompt's end
        notices.append(heard_line(model, prompt, in_view, vocab))
    steps = serving.steps(model, comp)  # a sampler process starts at once, while FluidSynth loads
    live = _live_view(folder.name, comp.variations, (prompt.steps, FOREVER), audio, warnings,
                      soundfont=serving.limits.soundfont)
    length = None if comp.lay is None else f"{bars} bars" if bars is not None else f"{float(seconds):g} s"
    job = _Job(steps=steps, comp=comp, model=model, title=f"maia — {prompt.composer}", mine=(prompt.steps, FOREVER),
               key=controls.key if controls is not None and controls.key_strength > 0 else None, stop=stop,
               ended=f"composed its {length}" if length else "reached the end of the piece", serving=serving)
    try:
        yield from _drive(job, folder, live, deadline, interval, warnings, notices)
    finally:  # also when the client goes away mid-stream (Gradio closes the generator)
        live.close()


def regenerate(source_midi, from_beat, to_beat, composer, model, top_k, temperature, seed, *,
               interval: float = UPDATE_INTERVAL, audio: bool = True, budget: float | None = None,
               stop: threading.Event | None = None, serving: Serving | None = None) -> Iterator[Update]:
    """Rewrites the passage of ``source_midi`` between two quarter-note beats with a fill-in-the-middle
    model and streams it like ``stream`` (one variation): everything before and after the passage is
    kept bit for bit (maia/infill.py). Raises InputError for a bad request (no file, a span outside
    the music, a model without fill-in-the-middle). ``stop`` and ``serving``: as for ``stream``."""
    from maia.generate import resolve_composer
    from maia.infill import beats_to_steps

    serving = serving or Serving.default()
    started = time.monotonic()
    budget = serving.time_budget() if budget is None else budget
    deadline = started + budget
    if not source_midi:
        raise InputError("nothing to regenerate yet: compose or upload something first")
    net, vocab = serving.load(model)
    if not vocab.fim:
        raise InputError(f"the {model} model was not trained to fill in the middle; choose another model")
    path = Path(source_midi)
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise InputError(f"{path.name}: regenerate works on a MIDI file (.mid or .midi)")
    piece = read_upload(path, vocab, serving)
    try:
        from_beat, to_beat = float(from_beat), float(to_beat)
    except (TypeError, ValueError):
        raise InputError("from and to must be beats (numbers)") from None
    start, end = beats_to_steps(piece, from_beat, to_beat)
    name = resolve_composer(vocab, composer)
    comp = Composition.passage(net, vocab, piece, start, end, name,
                               settings(PASSAGE_TOKENS, top_k, temperature, seed, 1, serving.limits.max_tokens))
    folder = serving.new_request_folder()
    warnings = []
    steps = serving.steps(model, comp)  # (started before FluidSynth loads, as in stream)
    live = _live_view(folder.name, 1, (start, end), audio, warnings, soundfont=serving.limits.soundfont)
    job = _Job(steps=steps, comp=comp, model=model,
               title=f"maia — {name}, beats {float(from_beat):g}–{float(to_beat):g} regenerated", mine=(start, end),
               stop=stop, ended="filled the passage: the music after it follows unchanged", serving=serving)
    try:
        yield from _drive(job, folder, live, deadline, interval, warnings, [])
    finally:
        live.close()


def show(entry: dict | None, serving: Serving | None = None) -> Update:
    """A history entry ({"midi": path, "mine_s": [from, to] seconds of maia's notes, "status"}; a duet's also
    "turns_s": maia's answers, [[from, to], ...] seconds) as a finished update, as if just composed: the roll's
    message with all the audio and the sheet music, the files and the analysis line. InputError when its file
    is gone (maia/history.py keeps the entries)."""
    serving = serving or Serving.default()
    if not entry or not Path(entry["midi"]).is_file():
        raise InputError("that piece is no longer on the server (pieces are kept for an hour)")
    piece = read(entry["midi"])  # a file this server wrote
    folder = serving.new_request_folder()
    sps = piece.seconds_per_step
    mine = (round(entry["mine_s"][0] / sps), round(entry["mine_s"][1] / sps) + 1)
    turns = [(round(a / sps), round(b / sps)) for a, b in entry["turns_s"]] if entry.get("turns_s") else None
    live = _live_view(folder.name, 1, mine, True, [], turns, soundfont=serving.limits.soundfont)
    title = "A duet with maia" if turns else "maia"
    done = Composition(None, None, SamplingConfig(max_new_tokens=1), "", [[]], lambda _ids: piece,
                       lambda _ids: piece.end_step)  # nothing to sample: the piece as it is
    job = _Job(steps=iter([]), comp=done, model="history", title=title,
               mine=(turns[0][0], FOREVER) if turns else mine, serving=serving)  # the PNG roll: your first phrase blue
    try:
        update = list(_drive(job, folder, live, time.monotonic() + serving.time_budget(), UPDATE_INTERVAL, [], []))[-1]
    finally:
        live.close()
    update.status = entry.get("status", "")
    return update


def finish_duet(data: str | None, turns_s, serving: Serving | None = None) -> Update:
    """A duet ended on the page (maia/web/keys.js sends the dialogue as a base64 Standard MIDI File, and maia's
    answers as [[from, to], ...] seconds) -> the page's current piece, finished as a composition is (``show``:
    the roll with your notes and maia's, the audio, the sheet music, the files), for the history to remember.
    InputError for nothing played, bad base64, a file the reader refuses or bad spans."""
    nothing = "the duet has no notes yet: play a phrase and let maia answer"
    path = _page_midi(data, "duet.mid", nothing, nothing, serving)
    if not isinstance(turns_s, list) or not turns_s or len(turns_s) > 1024:
        raise InputError("the duet did not say when maia played: end it again")
    try:
        turns = [(real_number(a, "a turn's start"), real_number(b, "a turn's end")) for a, b in turns_s]
    except (TypeError, ValueError):
        raise InputError("the duet did not say when maia played: end it again") from None
    n = len(turns)
    return show({"midi": path, "mine_s": [turns[0][0], turns[-1][1]], "turns_s": turns,
                 "status": f"a duet of {n} turn{'s' if n > 1 else ''}: your phrases in blue, maia's answers in orange"},
                serving)


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
    serving: Serving = field(default_factory=Serving.default)  # the server's limits and device (maia/serving.py)


def _drive(job: _Job, folder: Path, live, deadline: float, interval: float, warnings, notices) -> Iterator[Update]:
    """``_stream``, with a disk that fails (full, unwritable) as a ServerError: one line for the user."""
    try:
        yield from _stream(job, folder, live, deadline, interval, warnings, notices)
    except OSError as e:
        raise _disk_error(e) from None
    finally:  # finished, failed or cancelled: the sampling stops, what the request freed goes back to the system
        if hasattr(job.steps, "close"):
            job.steps.close()
        job.serving.release(folder)  # its files may be swept from now on (limits.keep_files)
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
        return Update(outs, _status(made, config, comp.ended, sampling, job.model, job.ended, device=job.serving.device()),
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
        files = outputs.write(piece, midi=folder / f"maia-{i + 1}.mid", wav=wav,
                              soundfont=job.serving.limits.soundfont or None, key=job.key, ending=endings[i])
        outs.append(Output(midi=files.midi, audio=files.audio, analysis=files.analysis))
    messages = live.finish(final)
    for out, message in zip(outs, messages, strict=True):
        out.live = message
    status = "done: " + _status(made, config, comp.ended, sampling, job.model, job.ended,
                                device=job.serving.device()) + shaped
    if stopped:
        status += " · stopped: the music made so far is the piece"
    warned = []
    if out_of_time:
        status += " · stopped at the time limit"
        warned.append(f"stopped at the time limit of one request ({job.serving.time_budget():g} s): kept {made} of "
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
            ending: str = "reached the end of the piece", *, device: str) -> str:
    rate = made / sampling if sampling > 0 else 0.0
    text = f"{made}/{config.max_new_tokens} tokens · sampled at {rate:.0f} tokens/s · {model} on {device}"
    finished = [str(i + 1) for i, e in enumerate(ended) if e]
    if finished:
        text += f" · variation {', '.join(finished)} {ending}"
    return text


def continue_from(midi: str | Path | None) -> str:
    """A finished variation's MIDI as the next prompt."""
    if not midi:
        raise InputError("nothing to continue yet: compose something first")
    return str(midi)


def played_prompt(data: str | None, serving: Serving | None = None) -> str:
    """A phrase played on the page (maia/web/keys.js writes it as a Standard MIDI File, base64) as a prompt:
    written to a fresh request folder as ``played.mid`` and read back within the same limits as an upload, so
    compose, continue, regenerate and permalinks take it as they take an uploaded file. InputError for
    nothing played, bad base64 or a file the reader refuses."""
    return str(_page_midi(data, "played.mid", "nothing was played: press Record, play, then Stop",
                          "the recording holds no notes: press Record, play, then Stop", serving))


def _page_midi(data: str | None, name: str, nothing: str, empty: str, serving: Serving | None = None) -> Path:
    """A Standard MIDI File the page wrote (base64) in a fresh request folder as ``name``, checked by reading it
    back within an upload's limits; InputError ``nothing`` when none came, ``empty`` when it holds no notes."""
    serving = serving or Serving.default()
    limits = serving.limits
    text = (data or "").strip()
    if not text:
        raise InputError(nothing)
    if len(text) > limits.max_input_bytes * 4 // 3 + 4:  # the decoded file would be over the upload limit
        raise InputError(f"the recording is too long (over {limits.max_input_bytes // 1024} KiB of MIDI)")
    try:
        midi = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("the recording did not arrive whole (bad base64); please record again") from None
    path = serving.new_request_folder() / name
    serving.release(path.parent)  # a file, not a running request: kept like any other for limits.keep_files
    try:
        path.write_bytes(midi)
    except OSError as e:
        raise _disk_error(e) from None
    piece = read(path, EncodingConfig(), max_bytes=limits.max_input_bytes, max_quarters=limits.max_quarters)
    if not len(piece.notes):
        raise InputError(empty)
    return path
