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

What a request composes is a maia/compose.py Composition, and maia/streaming.py runs it (updates, the
deadline, the finishing). The page's settings are checked in maia/options.py, its undo history is
maia/history.py and its permalinks maia/permalinks.py.
"""

from __future__ import annotations

import base64
import binascii
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from maia.compose import PASSAGE_TOKENS, Composition
from maia.encoding import MIDI_SUFFIXES, Piece, read
from maia.errors import InputError, MaiaError
from maia.generate import Prompt, SamplingConfig, build_prompt, prompt_tokens_in_view, time_steps
from maia.live import FOREVER
from maia.options import KEY_OFF, PIANO_RANGE, length_settings, real_number, settings, steering, whole_number
from maia.serving import Serving
from maia.serving import disk_error as _disk_error
from maia.streaming import (
    UPDATE_INTERVAL,
    Job,
    Update,
    drive,
    live_view,
)
from maia.vocab import EncodingConfig, Vocab

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"
LACRIMOSA = PROMPTS_DIR / "lacrimosa.mid"
LACRIMOSA_BARS = 22  # maia's bars after Mozart's 8: the completed movement is 30 bars long
# tokens per second of music in the piano model's corpus, 10th, 50th and 90th percentile of 300 of its files
# (python -m scripts.corpus_pace): the length hint's range when there is no prompt to measure
CORPUS_TOKENS_PER_SECOND = (18.0, 27.0, 47.0)


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


KEY_CANDIDATES = 3  # the Lacrimosa button's continuations per variation; the first in the home key is kept: in
#                     D minor or F major in 9 of 10 seeds, 7 with one (docs/models.md)


def whole_piece(net, vocab: Vocab, prompt: Prompt, config: SamplingConfig, bars: int | None, seconds: float | None,
                end: bool, form_name: str | None, controls=None, key_candidates: int = KEY_CANDIDATES,
                serving: Serving | None = None) -> Composition:
    """The page's composition: ``config.max_new_tokens`` tokens after ``prompt``, or (``bars`` or ``seconds``) a
    whole piece of that length planned by maia.form.layout, each variation sampling up to ``key_candidates``
    continuations with an ending (maia.compose.Composition.continuation); InputError for a form that does not
    fit."""
    return Composition.continuation(net, vocab, prompt, config, bars, seconds, end, form_name, 4, controls,
                                    key_candidates, max_tokens=(serving or Serving.default()).limits.max_tokens)


def stream(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key=KEY_OFF,
           key_strength=1.0, lowest=PIANO_RANGE[0], highest=PIANO_RANGE[1], density=1.0, bars=None, seconds=None,
           end=False, form=None, *, interval: float = UPDATE_INTERVAL, audio: bool = True,
           budget: float | None = None, stop: threading.Event | None = None,
           key_candidates: int = 1, serving: Serving | None = None) -> Iterator[Update]:
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
    live = live_view(folder.name, comp.variations, (prompt.steps, FOREVER), audio, warnings,
                      soundfont=serving.limits.soundfont)
    length = None if comp.lay is None else f"{bars} bars" if bars is not None else f"{float(seconds):g} s"
    job = Job(steps=steps, comp=comp, model=model, title=f"maia — {prompt.composer}", mine=(prompt.steps, FOREVER),
               key=controls.key if controls is not None and controls.key_strength > 0 else None, stop=stop,
               ended=f"composed its {length}" if length else "reached the end of the piece", serving=serving)
    try:
        yield from drive(job, folder, live, deadline, interval, warnings, notices)
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
    live = live_view(folder.name, 1, (start, end), audio, warnings, soundfont=serving.limits.soundfont)
    job = Job(steps=steps, comp=comp, model=model,
               title=f"maia — {name}, beats {float(from_beat):g}–{float(to_beat):g} regenerated", mine=(start, end),
               stop=stop, ended="filled the passage: the music after it follows unchanged", serving=serving)
    try:
        yield from drive(job, folder, live, deadline, interval, warnings, [])
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
    live = live_view(folder.name, 1, mine, True, [], turns, soundfont=serving.limits.soundfont)
    title = "A duet with maia" if turns else "maia"
    done = Composition(None, None, SamplingConfig(max_new_tokens=1), "", [[]], lambda _ids: piece,
                       lambda _ids: piece.end_step)  # nothing to sample: the piece as it is
    job = Job(steps=iter([]), comp=done, model="history", title=title,
               mine=(turns[0][0], FOREVER) if turns else mine, serving=serving)  # the PNG roll: your first phrase blue
    try:
        update = list(drive(job, folder, live, time.monotonic() + serving.time_budget(), UPDATE_INTERVAL, [], []))[-1]
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
