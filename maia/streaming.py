"""A request, streamed: a composition (maia/compose.py) sampled step by step, shown about every half second,
then finished as files. maia/playground.py builds the request; this runs it.

    job = Job(steps=serving.steps(model, comp), comp=comp, model="piano", title="maia — bach", mine=(prompt.steps, FOREVER))
    for update in drive(job, folder, live, deadline, UPDATE_INTERVAL, warnings, notices):
        update.outputs[0].live, update.outputs[0].midi, update.status ...

While sampling, each update carries the MIDI so far and the live roll's message (maia/live.py); the audio
waits at ``comp.hold`` when finishing may change what follows. Sampling stops early enough for the finishing to
fit the request's deadline (``finish_seconds``, ``shaping_seconds``). Then the key candidate is chosen and the
piece shaped (the theme's return, the ending), the MIDI, the WAV and the analysis go out at once, and the sheet
music follows in one more update.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from maia import memory, outputs
from maia.compose import Composition
from maia.encoding import Piece
from maia.generate import SamplingConfig
from maia.serving import Serving
from maia.serving import disk_error as _disk_error

UPDATE_INTERVAL = 0.5  # seconds between streamed updates
FIRST_UPDATE = 0.1  # maia's first notes are shown this soon after sampling starts (after the prompt's update)
FINISH_BASE_SECONDS = 0.25  # finishing one variation: PNG, MusicXML, engraving (finish_seconds)
FINISH_SECONDS_PER_NOTE = 0.004
# the WAV rendered at 44.1 kHz, per second of music (0.011 measured at load 10): only a piece given an ending is
# rendered again (maia.live.LiveAudio.wav: else the stream's samples are the WAV), but every piece counts it
WAV_SECONDS_PER_SECOND = 0.02
ENDING_CANDIDATES = 4  # endings written per variation; the model's likeliest is kept (maia/form.py)
SHAPING_SECONDS_PER_TOKEN = 0.003  # form and ending, per token of a variation: 6.6 s for the Lacrimosa's 2,700
#                                    tokens (8 + 22 bars, ABA, ending) on one thread of a 2-core CPU


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


def live_view(request: str, variations: int, mine: tuple[int, int], audio: bool, warnings: list[str], turns=None,
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
    rendering, 0.02 s per second of music (``seconds``), which a piece given an ending needs (an upper bound)."""
    return variations * (FINISH_BASE_SECONDS + FINISH_SECONDS_PER_NOTE * notes + WAV_SECONDS_PER_SECOND * seconds)



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


@dataclass
class Job:
    """What one request samples and how its tokens become music: the continuation of a prompt (``stream``)
    or the middle of a span (``regenerate``). ``drive`` runs either."""

    steps: Iterator  # maia.generate's per-step token lists, for comp's rows
    comp: Composition  # the rows, how they become music, and how it is finished (maia/compose.py)
    model: str
    title: str  # of the sheet music
    mine: tuple[int, int]  # grid steps whose notes the user wrote (the prompt) or maia wrote (a span)
    key: tuple[int, str] | None = None  # a key lock: the key the line names and the sheet notates
    stop: threading.Event | None = None  # set: sampling ends, and what was made is finished (the page's Stop)
    ended: str = "reached the end of the piece"  # what the status line says of a row that sampled its stop_id
    serving: Serving = field(default_factory=Serving.default)  # the server's limits and device (maia/serving.py)


def drive(job: Job, folder: Path, live, deadline: float, interval: float, warnings, notices) -> Iterator[Update]:
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


def _stream(job: Job, folder: Path, live, deadline: float, interval: float, warnings, notices) -> Iterator[Update]:
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

    def finishing(now: float) -> float:
        """When finishing what is there would end, starting ``now``: ~2 tokens a note, per the longest row."""
        tokens = max(len(ids) for ids in comp.rows)
        return now + finish_seconds(tokens // 2, variations, heard) + shaping_seconds(comp, tokens)

    k = 0
    if comp.base > 2:  # show the music there is right away: the first update of the click
        yield snapshot(k)
        k += 1
    next_at = time.monotonic() + min(interval, FIRST_UPDATE)  # then every interval
    out_of_time = stopped = False
    steps = comp.run(job.steps)
    while True:
        if job.stop is not None and job.stop.is_set():
            stopped = True  # a normal end: what was made is finished as a whole piece
            break
        if finishing(time.monotonic()) > deadline:
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
        elif finishing(time.monotonic()) > deadline:
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
    # The WAV, with audio on, is the CLI's (maia.outputs: 44.1 kHz, one level rule): the live stream's own samples
    # at that level when the piece is the music played, else rendered again.
    messages = live.finish(final)
    outs = []
    for i, piece in enumerate(final):
        wav = folder / f"maia-{i + 1}.wav" if live.players else None
        files = outputs.write(piece, midi=folder / f"maia-{i + 1}.mid", wav=wav, audio=live.wav(i, piece),
                              sample_rate=live.rate, soundfont=job.serving.limits.soundfont or None, key=job.key,
                              ending=endings[i])
        outs.append(Output(midi=files.midi, audio=files.audio, analysis=files.analysis))
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
