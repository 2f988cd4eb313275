"""maia's playground: give it a MIDI prompt (or just a composer) and watch and hear the continuation.

    python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change)

This file is the page only: layout and wiring. What the buttons do lives in maia/playground.py (with
maia/options.py, maia/history.py and maia/permalinks.py), the server's state in one maia.serving.Serving
(SERVING, built here from MAIA_*), and the Gallery and Listen tabs in maia/gallery/page.py.

Over 300 lines because the page has many controls (length, ending, form, steering, the instrument, the duet,
regeneration, history, downloads) and each is declared and wired here; no handler decides anything itself.
"""

from __future__ import annotations

import json
import logging
import os
import random

import gradio as gr

from maia import duet, options, permalinks, playground
from maia import history as page_history
from maia.encoding import MIDI_SUFFIXES
from maia.errors import MaiaError
from maia.gallery import open_gallery
from maia.gallery import page as gallery_page
from maia.generate import TOP_K_RANGE, VARIATIONS_RANGE, SamplingConfig
from maia.limits import Limits
from maia.serving import Serving
from maia.web import KEYS_TEMPLATE, ROLL_TEMPLATE, gradio_fix, keys_js, roll_js

try:
    LIMITS = Limits.from_env()  # the only reading of MAIA_* settings (maia/limits.py)
except MaiaError as e:
    raise SystemExit(f"maia: {e}") from None
SERVING = Serving(LIMITS)  # the models, the sampler processes, the folders and the Stop buttons of this server
GALLERY, GALLERY_PROBLEM = open_gallery(LIMITS)  # None and one line when its database cannot be used
MAX_VARIATIONS = VARIATIONS_RANGE[1]
DEFAULT_BARS = 16  # a page's first piece: about 20 s of sampling and shaping on 2 CPU cores (README)
DEFAULT_MODEL = next(iter(SERVING.model_choices()), None)
ROLL_JS = roll_js()
KEYS_JS = keys_js()
LOG = logging.getLogger("maia")
IDLE_POLL_SECONDS = (0.05, 0.1)  # how often Gradio's queue looks for new work and for progress (see __main__)
DUETS = duet.Duets(SERVING.load)  # the duets being played: their dialogues, by id (maia/duet.py)
if GALLERY is None:
    LOG.warning("the gallery is off: %s", GALLERY_PROBLEM)


def refused(e: MaiaError) -> gr.Error:
    """A user's mistake (a bad file, a value out of range): one line in the server's log, one on the page."""
    LOG.info("refused: %s", e)
    return gr.Error(str(e), print_exception=False)


def failed(e: Exception) -> gr.Error:
    """A bug: its traceback goes to the server's log (once: Gradio prints none), one line to the user."""
    LOG.exception("request failed")
    return gr.Error(f"internal error ({type(e).__name__}); please try again or report it", print_exception=False)


def upload(value) -> str | None:
    """The path of an uploaded file as the handler gets it: /generate and /infill take their inputs as sent
    (``preprocess=False``), a file as Gradio's FileData (a dict, already checked and in Gradio's cache); a
    direct call from Python passes a path."""
    return value.get("path") if isinstance(value, dict) else value


def session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None)


def generate(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key=options.KEY_OFF,
             key_strength=1.0, lowest=21, highest=108, density=1.0, bars=None, seconds=None, end=False, form="none",
             request: gr.Request = None, *, serving: Serving = SERVING,  # (a test passes a Serving of its own)
             key_candidates: int = 1):  # (the Lacrimosa button's: lacrimosa_page)
    """Compose a continuation of a MIDI prompt (or of nothing) in the style of a composer, optionally
    steered: a key lock ("off", "the prompt's key" or e.g. "D minor") of some strength (0..1), a register
    (lowest and highest MIDI keys) and a note density factor (0.25..4).

    Its length is ``tokens``, or with ``bars`` (or ``seconds``) exactly that many bars (seconds) after the
    prompt, in its metre; then ``end=True`` closes the piece with a cadence in its home key (the key lock's,
    else the prompt's), and ``form`` ("ABA", "AABA", "rondo"; "none") brings the prompt's opening back.

    Streams. Each update holds, for each of 4 variation slots: the live piano roll's message (JSON:
    notes, the audio since the last update, and when done the engraved sheet music), the files (the MIDI
    so far; when done also the WAV, the MusicXML and the piano roll PNG) and an analysis line; unused
    slots are empty. Then a status line. The page's Stop ends the sampling and the music made so far is
    finished like a whole piece."""
    try:
        with serving.stops.running(session(request)) as stop:
            for update in playground.stream(upload(prompt_midi), composer, model, tokens, top_k, temperature, seed,
                                            variations, key, key_strength, lowest, highest, density, bars, seconds,
                                            end, form, stop=stop, serving=serving, key_candidates=key_candidates):
                for text in update.warnings:
                    gr.Warning(text)
                for text in update.notices:
                    gr.Info(text)
                values = []
                for i in range(MAX_VARIATIONS):
                    o = update.outputs[i] if i < len(update.outputs) else None
                    files = [str(f) for f in (o.midi, o.audio, o.musicxml, o.roll) if f] if o else []
                    values += [o.live if o else "", files or None, o.analysis if o else ""]
                yield [*values, update.status]
    except MaiaError as e:
        raise refused(e) from None
    except Exception as e:  # a bug
        raise failed(e) from None


def compose_page(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key, key_strength,
                 lowest, highest, density, length_unit, length, end, form, request: gr.Request = None, *,
                 key_candidates: int = 1):
    """The page's Compose: its length control (bars, seconds or tokens, and a number) as /generate's values."""
    try:
        bars, seconds, end, form = options.page_length(length_unit, length, end, form)
    except MaiaError as e:
        raise refused(e) from None
    yield from generate(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key, key_strength,
                        lowest, highest, density, bars, seconds, end, form, request, key_candidates=key_candidates)


def lacrimosa_page(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key, key_strength,
                   lowest, highest, density, length_unit, length, end, form, request: gr.Request = None):
    """The Lacrimosa button: Compose with key candidates (the first of three continuations in D minor or F major
    is kept, docs/models.md). Only here: the live audio waits at the prompt's end for the choice, which
    Mozart's 48 s of bars cover while maia samples, and a short prompt would not."""
    yield from compose_page(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key,
                            key_strength, lowest, highest, density, length_unit, length, end, form, request,
                            key_candidates=playground.KEY_CANDIDATES)


def regenerate(source, from_beat, to_beat, composer, model, top_k, temperature, seed, request: gr.Request = None, *,
               serving: Serving = SERVING):
    """Rewrite the passage of a MIDI file between two quarter-note beats (from 0) with a
    fill-in-the-middle model, keeping everything before and after it bit for bit.

    Streams, like /generate for one variation: the live roll's message, the files (MIDI so far; when done
    also WAV, MusicXML, PNG roll), an analysis line, and a status line."""
    try:
        with serving.stops.running(session(request)) as stop:
            for update in playground.regenerate(upload(source), from_beat, to_beat, composer, model, top_k,
                                                temperature, seed, stop=stop, serving=serving):
                for text in update.warnings:
                    gr.Warning(text)
                o = update.outputs[0]
                yield o.live, [str(f) for f in (o.midi, o.audio, o.musicxml, o.roll) if f], o.analysis, update.status
    except MaiaError as e:
        raise refused(e) from None
    except Exception as e:  # a bug
        raise failed(e) from None


def current_midi(files):
    return next((f for f in files or [] if str(f).endswith(".mid")), None)


def regenerate_current(files, from_beat, to_beat, composer, model, top_k, temperature, seed,
                       request: gr.Request = None):
    yield from regenerate(current_midi(files), from_beat, to_beat, composer, model, top_k, temperature, seed, request)


def remember(history, live, files, status):
    """After a composition: variation 1's piece goes into the session's history; Stop is off again."""
    history = page_history.remember(history, live, files, status)
    return history, *history_buttons(history), disarm()


def history_buttons(history):
    at, n = history["at"], len(history["items"])
    return gr.update(interactive=at > 0), gr.update(interactive=at < n - 1)


def step_history(history, delta):
    history, entry = page_history.step_history(history, delta)
    if entry is None:
        return history, gr.skip(), gr.skip(), gr.skip(), gr.skip(), *history_buttons(history)
    try:
        update = playground.show(entry, SERVING)
    except MaiaError as e:
        raise refused(e) from None
    o = update.outputs[0]
    files = [str(f) for f in (o.midi, o.audio, o.musicxml, o.roll) if f]
    where = f"piece {history['at'] + 1} of {len(history['items'])}"
    return history, o.live, files, o.analysis, f"{where} · {update.status}", *history_buttons(history)


def played(evt: gr.EventData):
    """A phrase played on the page (the instrument's Stop recording) becomes the prompt, as an upload would."""
    try:
        return playground.played_prompt(getattr(evt, "midi", None), SERVING)
    except MaiaError as e:
        raise refused(e) from None


def duet_finished(evt: gr.EventData):
    """A duet ended on the page: the whole dialogue becomes variation 1's piece, as a composition's result does
    (the roll, the player, the sheet music, the downloads), and then goes into the history."""
    try:
        update = playground.finish_duet(getattr(evt, "midi", None), getattr(evt, "turns", None), SERVING)
    except MaiaError as e:
        raise refused(e) from None
    o = update.outputs[0]
    return o.live, [str(f) for f in (o.midi, o.audio, o.musicxml, o.roll) if f], o.analysis, update.status


def duet_turn(message):
    """One duet turn through Gradio's queue, streamed: each yield one line of /maia/duet/turn (maia/duet.py).
    The page uses the route; this is its peer in bench/duet_latency.py."""
    try:
        key, dialogue, turn = DUETS.begin(duet.parse(message))
    except MaiaError as e:
        raise refused(e) from None
    for event in DUETS.events(key, dialogue, turn):
        yield json.dumps(event)


def span_selected(evt: gr.EventData):
    return evt.from_beat, evt.to_beat


def make_link(prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key, key_strength, lowest,
              highest, density, length_unit, length, end, form, request: gr.Request):
    """A permalink to the page with these settings and this prompt."""
    values = [composer, model, tokens, top_k, temperature, seed, variations, key, key_strength, lowest, highest, density,
              length_unit, length, end, form]
    base = request.headers.get("referer") or f"http://{request.headers.get('host', '127.0.0.1:7860')}/"
    try:
        return permalinks.permalink(base, prompt_midi, dict(zip(permalinks.LINK_FIELDS, values, strict=True)), SERVING)
    except OSError as e:  # the upload is gone, or the temp folder is full
        raise gr.Error(f"cannot make the link: {e.strerror or e}") from None


def restore(request: gr.Request):
    """The page's values from a permalink's query string (a plain visit changes nothing)."""
    values = permalinks.from_link(dict(request.query_params), SERVING)
    return [values.get(k, gr.skip()) for k in ("prompt_midi", *permalinks.LINK_FIELDS)]


def show_slots(n):
    return [gr.update(visible=i < int(n)) for i in range(MAX_VARIATIONS)]


def length_hint(tokens, prompt_midi=None, model=None):
    """How much music the tokens make: at the prompt's own pace, else the corpus's range (no fixed rate)."""
    return playground.length_hint(tokens, upload(prompt_midi), model, SERVING)


def length_unit_changed(unit):
    """Bars or seconds: the number, End and Form; tokens: the slider under Advanced (opened), no End or Form."""
    whole = unit != "tokens"
    return (gr.update(visible=whole, precision=0 if unit == "bars" else None), gr.update(visible=not whole),
            gr.update(visible=whole), gr.update(open=not whole))


def composers_for(model, composer):
    """The new model's composers, keeping the chosen one when the model knows it (else saying so)."""
    value, notice = options.composer_for(model, composer, SERVING)
    if notice:
        gr.Info(notice)
    return gr.update(choices=options.composer_choices(model, SERVING), value=value)


def arm(request: gr.Request):
    """A composition was asked for: Stop applies to it, enabled and red while it runs (grey when idle)."""
    SERVING.stops.arm(session(request))
    return gr.update(interactive=True, variant="stop")


def disarm():
    return gr.update(interactive=False, variant="secondary")


def stop_composing(request: gr.Request):
    """Stop: the running composition ends and finishes what it made (its stream's last updates)."""
    SERVING.stops.stop(session(request))
    return disarm()


def continue_from(files, variation: int):
    """A variation's piece becomes the prompt, and (the click's next step) maia composes its continuation."""
    try:
        prompt = playground.continue_from(next((f for f in files or [] if str(f).endswith(".mid")), None))
    except MaiaError as e:
        raise refused(e) from None
    gr.Info(f"variation {variation} is the prompt now: composing its continuation")
    return prompt


# On a narrow screen the settings stack above the roll: Compose brings the roll into view, to watch it fill in.
SHOW_ROLL = ("() => { const r = document.querySelector('#live-1');"
             " if (r && r.getBoundingClientRect().top > window.innerHeight * 0.6) r.scrollIntoView({block: 'start'}); }")
# The downloads box is hidden until it holds a file: empty, it looked like a second upload area.
PAGE_CSS = ".downloads:not(:has(a)) { display: none !important; }"


with gr.Blocks(title="maia — AI piano composer", delete_cache=(600, 3600)) as demo:
    gr.Markdown(
        "# maia 🎹\nUpload a MIDI file (or pick an example, or none) and a composer: maia continues the music "
        "token by token. Watch the piano roll fill in (blue: your prompt, orange: maia) and listen as it is "
        "composed; click the roll to jump, and switch to the sheet music when it is done. maia picks each "
        "next token among the *top-k* likeliest."
    )
    token = gallery_page.browser_token(demo)  # this browser's gallery token, kept in its local storage
    with gr.Tabs():
        with gr.Tab("Compose"), gr.Row():
            with gr.Column(scale=1):
                # The main actions first, where the eye lands (issue 21): prompt, composer, length, Compose;
                # the finer settings below them.
                prompt_midi = gr.File(label="Prompt (MIDI): optional", file_types=sorted(MIDI_SUFFIXES),
                                      type="filepath", height=130)
                with gr.Row():
                    composer_list = options.composer_choices(DEFAULT_MODEL, SERVING)
                    composer = gr.Dropdown(composer_list, value=composer_list[0][1], label="Composer",
                                           allow_custom_value=True, min_width=120)
                    model = gr.Dropdown(SERVING.model_choices(), value=DEFAULT_MODEL, label="Model", min_width=120)
                with gr.Row(equal_height=True):
                    length = gr.Number(value=DEFAULT_BARS, label="Length", minimum=0, precision=0, min_width=90,
                                       elem_id="length")
                    tokens_note = gr.Markdown("the number of tokens is set under Advanced, below",
                                              visible=False, min_height=0)
                    length_unit = gr.Dropdown(list(options.LENGTH_UNITS), value="bars", label="in", min_width=90,
                                              elem_id="length-unit")
                with gr.Row(equal_height=True) as whole_row:
                    end = gr.Checkbox(value=True, label="End in the home key", min_width=160, elem_id="end",
                                      info="a cadence on the last downbeat")
                    form = gr.Dropdown(list(options.FORMS), value="none", label="Form", allow_custom_value=True,
                                       min_width=90, info="the opening comes back", elem_id="form")
                with gr.Row():
                    compose = gr.Button("Compose", variant="primary", min_width=100)
                    stop = gr.Button("Stop", variant="secondary", interactive=False, min_width=80)  # red while composing
                examples = [[str(p)] for p in playground.example_prompts()]
                if examples:
                    gr.Examples(examples, inputs=[prompt_midi], label="Example prompts")
                lacrimosa = gr.Button("Complete the Lacrimosa (Mozart)", visible=playground.LACRIMOSA.is_file())
                with gr.Row():
                    top_k = gr.Slider(*TOP_K_RANGE, value=SamplingConfig.top_k, step=1, label="Top-k",
                                      info="20: closest to real music (docs/models.md); 0: no cut")
                    original = gr.Button("Original maia (top-k 5)", size="sm", elem_id="original-top-k")
                temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
                    randomise = gr.Button("🎲 Randomise", size="sm")
                variations = gr.Slider(*VARIATIONS_RANGE, value=1, step=1, label="Variations")
                with gr.Accordion("Advanced: length in tokens", open=False) as advanced:
                    tokens = gr.Slider(16, LIMITS.max_tokens, value=512, step=16, label="Length (tokens)",
                                       info="used when the length is in tokens: no ending or form then")
                    seconds = gr.Markdown(length_hint(512), elem_id="length-hint")
                with gr.Accordion("Steering", open=False):
                    key = gr.Dropdown(options.key_choices(), value=options.KEY_OFF, label="Key lock",
                                      info="hold the notes to a key's scale")
                    key_strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Key strength",
                                             info="1: never outside the scale; 0: no effect")
                    with gr.Row():  # note names (C4: middle C); the values stay MIDI keys, as /generate takes them
                        lowest = gr.Dropdown(options.register_choices(), value=21, label="Lowest key",
                                             min_width=90, elem_id="lowest")
                        highest = gr.Dropdown(options.register_choices(), value=108, label="Highest key",
                                              min_width=90, elem_id="highest")
                    density = gr.Slider(0.25, 4.0, value=1.0, step=0.05, label="Note density",
                                        info="notes against moving on in time: above 1 more notes per second, below fewer")
                with gr.Row():
                    link_button = gr.Button("🔗 Permalink", size="sm")
                link = gr.Textbox(label="Permalink: opening it restores these settings; Compose then gives the same music",
                                  buttons=["copy"], interactive=False)
            with gr.Column(scale=2):
                status = gr.Markdown()
                slots, outputs, continues = [], [], []
                for i in range(MAX_VARIATIONS):
                    with gr.Group(visible=i == 0) as slot:
                        gr.Markdown(f"### Variation {i + 1}", elem_classes=["variation-heading"])
                        live = gr.HTML("", html_template=ROLL_TEMPLATE, js_on_load=ROLL_JS, slot=i + 1,
                                       elem_id=f"live-{i + 1}", label=f"Variation {i + 1}", padding=True)
                        if i == 0:  # the instrument: play the prompt; maia's notes to MIDI out
                            with gr.Accordion("Play the prompt: keyboard, MIDI in and out", open=True,
                                              elem_id="instrument"):
                                keys = gr.HTML("", html_template=KEYS_TEMPLATE, js_on_load=KEYS_JS,
                                               elem_id="keys", padding=False)
                        files = gr.File(label="Downloads: MIDI, then WAV, MusicXML and PNG roll when done",
                                        file_count="multiple", interactive=False, elem_id=f"downloads-{i + 1}",
                                        elem_classes=["downloads"])
                        analysis = gr.Markdown()
                        cont = gr.Button("Continue from this variation", size="sm")
                    slots.append(slot)
                    outputs += [live, files, analysis]
                    continues.append((cont, files))
                with gr.Group(elem_id="regenerate-passage"):  # after the variations, not between them
                    gr.Markdown("**Regenerate a passage** of variation 1: shift+drag on its roll to select "
                                "one, or type its beats (quarter notes from 0). maia rewrites only that span "
                                "and keeps everything before and after it note for note.")
                    with gr.Row():
                        from_beat = gr.Number(label="From beat", value=0, minimum=0)
                        to_beat = gr.Number(label="To beat", value=4, minimum=0)
                        regen = gr.Button("Regenerate passage", variant="secondary")
                    with gr.Row():
                        undo = gr.Button("↶ Undo", size="sm", interactive=False)
                        redo = gr.Button("↷ Redo", size="sm", interactive=False)
                gallery_page.save_controls(GALLERY, token, [f for _, f in continues], status, [
                    prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key,
                    key_strength, lowest, highest, density, length_unit, length, end,
                    form], variations, SERVING)  # a finished variation with the settings it was made with
        gallery_page.build_tabs(GALLERY, GALLERY_PROBLEM, token)  # the Gallery and Listen tabs

    inputs = [prompt_midi, composer, model, tokens, top_k, temperature, seed, variations, key, key_strength, lowest,
              highest, density]
    page_inputs = [*inputs, length_unit, length, end, form]  # the page's length control, End and Form
    history = gr.State(page_history.new_history())  # per browser session: undo never crosses users
    first = outputs[:3]  # variation 1: live roll, files, analysis
    # The API's two endpoints take their values as sent (preprocess=False): maia checks each one and says in one
    # line what is wrong, where Gradio's own checks fail on e.g. tokens="abc" with a generic error, and round a
    # seed through a float.
    # Each composition arms Stop first (outside the queue, so a Stop while it waits in the queue counts), and
    # disarms it when done. Stop asks the stream to finish what it made (SERVING.stops): no Gradio cancel, which would
    # drop the stream mid-update, leave the player waiting and put an "Error" badge on the roll.
    # The API's /generate takes bars, seconds, end and form as values of their own (no value: a length in tokens,
    # as before they came), where the page has one length control.
    with gr.Group(visible=False):
        api_length = [gr.Number(value=None, label="bars"), gr.Number(value=None, label="seconds"),
                      gr.Checkbox(value=False, label="end"), gr.Textbox(value="none", label="form")]
    generate_api = gr.Button(visible=False)
    generate_api.click(generate, [*inputs, *api_length], [*outputs, status], api_name="generate", preprocess=False)
    # A composition shows its progress in the roll and the status line, so Gradio's own is "minimal": its full
    # progress pulses a border around every output for the whole stream, a repaint of the page at every frame.
    compose.click(None, None, None, js=SHOW_ROLL, queue=False, api_visibility="private")
    composing = compose.click(arm, None, stop, queue=False, api_visibility="private").then(
        compose_page, page_inputs, [*outputs, status], api_visibility="private", preprocess=False,
        show_progress="minimal")
    composing.then(remember, [history, first[0], first[1], status], [history, undo, redo, stop],
                   api_visibility="private")
    # the whole Lacrimosa: Mozart's 8 bars, then maia's 22 (the completed movement's length), ABA, ending in D minor
    lacrimosa.click(None, None, None, js=SHOW_ROLL, queue=False, api_visibility="private")
    completing = lacrimosa.click(arm, None, stop, queue=False, api_visibility="private").then(
        lambda: (str(playground.LACRIMOSA), "mozart", "bars", playground.LACRIMOSA_BARS, True, "ABA"), None,
        [prompt_midi, composer, length_unit, length, end, form], api_visibility="private"
    ).then(lacrimosa_page, page_inputs, [*outputs, status], api_visibility="private", preprocess=False,
           show_progress="minimal")
    completing.then(remember, [history, first[0], first[1], status], [history, undo, redo, stop],
                    api_visibility="private")
    # the API's /infill: any MIDI file; the page's button: variation 1's piece
    duet_api = gr.Button(visible=False)  # the duet's turn through the queue: the benchmark's peer of its route
    duet_api.click(duet_turn, gr.Textbox(visible=False), gr.Textbox(visible=False), api_name="duet_turn",
                   api_visibility="undocumented")  # callable, not part of the documented API
    infill_api = gr.Button(visible=False)
    infill_api.click(regenerate, [prompt_midi, from_beat, to_beat, composer, model, top_k, temperature, seed],
                     [*first, status], api_name="infill", preprocess=False)
    regenerating = regen.click(arm, None, stop, queue=False, api_visibility="private").then(
        regenerate_current, [first[1], from_beat, to_beat, composer, model, top_k, temperature, seed],
        [*first, status], api_visibility="private", show_progress="minimal")
    regenerating.then(remember, [history, first[0], first[1], status], [history, undo, redo, stop],
                      api_visibility="private")
    undo.click(lambda h: step_history(h, -1), history, [history, *first, status, undo, redo], api_visibility="private")
    redo.click(lambda h: step_history(h, +1), history, [history, *first, status, undo, redo], api_visibility="private")
    keys.recorded(played, None, prompt_midi, api_visibility="private")
    keys.duet(duet_finished, None, [*first, status], api_visibility="private").success(
        remember, [history, first[0], first[1], status], [history, undo, redo, stop], api_visibility="private")
    first[0].span(span_selected, None, [from_beat, to_beat], api_visibility="private")
    settings = [composer, model, tokens, top_k, temperature, seed, variations, key, key_strength, lowest, highest,
                density, length_unit, length, end, form]  # in permalinks.LINK_FIELDS order
    link_button.click(make_link, [prompt_midi, *settings], link, api_visibility="private")
    demo.load(restore, None, [prompt_midi, *settings], api_visibility="private")
    stop.click(stop_composing, None, stop, queue=False, api_visibility="private")
    randomise.click(lambda: random.randrange(2**31), None, seed, api_visibility="private")
    original.click(lambda: 5, None, top_k, queue=False, api_visibility="private")  # the original maia's top-k
    for source in (tokens, prompt_midi, model):
        source.change(length_hint, [tokens, prompt_midi, model], seconds, api_visibility="private")
    length_unit.change(length_unit_changed, length_unit, [length, tokens_note, whole_row, advanced],
                       api_visibility="private")
    variations.change(show_slots, variations, slots, api_visibility="private")
    model.change(composers_for, [model, composer], composer, api_visibility="private")
    for i, (cont, files) in enumerate(continues):  # the variation becomes the prompt, then maia composes
        cont.click(None, None, None, js=SHOW_ROLL, queue=False, api_visibility="private")
        continuing = cont.click(lambda f, n=i + 1: continue_from(f, n), files, prompt_midi, api_visibility="private")
        continuing = continuing.success(arm, None, stop, queue=False, api_visibility="private").then(
            compose_page, page_inputs, [*outputs, status], api_visibility="private", preprocess=False,
            show_progress="minimal")
        continuing.then(remember, [history, first[0], first[1], status], [history, undo, redo, stop],
                        api_visibility="private")


if __name__ == "__main__":
    handler = logging.StreamHandler()  # maia's one line per refused request, and the traceback of a bug
    handler.setFormatter(logging.Formatter("%(asctime)s maia %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    concurrency = SERVING.start()
    SERVING.warm_up(DEFAULT_MODEL)  # load before serving, so the first click composes at once
    demo.queue(default_concurrency_limit=concurrency)
    # Gradio's queue polls for work every 1 ms and for progress every 10 ms, idle or not (its Windows values are
    # 50 and 100 ms): 9% of a core for a server that does nothing. A click now waits at most 50 ms to start.
    demo._queue.sleep_when_free, demo._queue.progress_update_sleep_when_free = IDLE_POLL_SECONDS
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=LIMITS.max_input_bytes,  # larger uploads are refused before they reach the handler
        allowed_paths=gallery_page.allowed_paths(GALLERY),  # the gallery's stored files
        css=PAGE_CSS,
        # the duet's streamed turns, beside the page; Gradio's status tracker with its idle-page fix
        app_kwargs={"routes": [*DUETS.routes("/maia/duet"), *gradio_fix.routes()]},
    )
