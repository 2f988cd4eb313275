"""The gallery's page parts: the Gallery and Listen tabs, and the Save to gallery controls, for app.py.

    with gr.Blocks() as demo:
        ...
        token = page.browser_token(demo)                      # this browser's gallery token (kept in it)
        page.save_controls(gallery, token, files, status, [prompt_midi, *settings], variations)
        page.build_tabs(gallery, problem, token)              # the Gallery and Listen tabs
    demo.launch(allowed_paths=page.allowed_paths(gallery))    # the stored files are served from MAIA_DATA_DIR

``gallery`` may be None (its database could not be opened): the tabs then show ``problem``, one line, and the
rest of the page composes as ever. Titles are shown in text boxes and radio labels, which Gradio renders as
text: HTML in a title is shown as typed; the sheet music is Verovio's SVG, in which a title is escaped text.
Every handler names pieces by id; none takes a path from the browser except ``files``, the playground's own
output component.
"""

from __future__ import annotations

import functools
import html
import os
import random
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl

import gradio as gr

from maia.errors import MaiaError
from maia.gallery.shelf import prompt_of, variant_of

ALL = "(all)"
SETTING_FIELDS = ("composer", "model", "tokens", "top_k", "temperature", "seed", "variations", "key", "key_strength",
                  "lowest", "highest", "density", "length_unit", "length", "end",
                  "form")  # the order of app.py's settings (permalinks.LINK_FIELDS)


def allowed_paths(gallery) -> list[str]:
    """What ``demo.launch(allowed_paths=...)`` needs so that Gradio serves the stored files."""
    return [str(gallery.blobs.root)] if gallery is not None else []


def browser_token(demo: gr.Blocks) -> gr.BrowserState:
    """A random token kept in this browser's local storage: its pieces and its votes are known by it."""
    token = gr.BrowserState(None, storage_key="maia-gallery-token")

    def ensure(value):
        return value if isinstance(value, str) and len(value) == 32 else secrets.token_hex(16)

    demo.load(ensure, token, token, api_visibility="private")
    return token


# ---- saving from the playground ---------------------------------------------------------------------------
def finished(status: str | None) -> bool:
    """Whether the playground's status line says its piece is complete: "done: …" (also after an undo, "piece 1
    of 2 · done: …") and no longer "writing the sheet music…", the update that still lacks the MusicXML and the
    roll."""
    status = str(status or "")
    return "done:" in status and "writing the sheet music" not in status


def save_from_playground(gallery, title, token, which, status, files, prompt_midi, *settings, serving=None) -> str:
    """Saves variation ``which`` (``files``: each variation's downloads, variation 1 first) with its settings;
    returns the line to show. A piece still being composed or notated (``status``) is refused in one line, so that
    what is saved is the finished piece with its sheet music and roll, never the update before them. ``serving``:
    the playground's (maia/serving.py), where its links keep their uploads."""
    if gallery is None:
        raise gr.Error("the gallery is not available on this server")
    from maia import permalinks
    from maia.encoding import read
    from maia.metrics import estimate_key, key_name

    values = dict(zip(SETTING_FIELDS, settings, strict=True))
    try:
        which = int(which or 1)
    except (TypeError, ValueError):
        which = 0
    shown = int(values.get("variations") or 1)
    if not 1 <= which <= min(shown, len(files)):
        raise gr.Error(f"choose a variation from 1 to {min(shown, len(files))}")
    variation = files[which - 1]
    by_ext = {Path(str(f)).suffix.lower(): Path(str(f)) for f in variation or []}
    kinds = {"midi": by_ext.get(".mid"), "wav": by_ext.get(".wav"), "musicxml": by_ext.get(".musicxml"),
             "roll": by_ext.get(".png")}
    if kinds["midi"] is None:
        raise gr.Error("compose a piece first: there is no MIDI to save yet")
    if not finished(status):
        raise gr.Error("maia is still writing this piece (its sheet music and roll come last): save it once the "
                       "status line says done")
    try:
        piece = read(kinds["midi"])
        # the playground's own permalink: an example by name, an upload by its hash (its file kept where the
        # playground's links find it)
        link = permalinks.permalink("", prompt_midi, values, serving).partition("?")[2]
        query = dict(parse_qsl(link))
        example, upload = query.get("example"), query.get("upload")
        settings_kept = {k: values[k] for k in SETTING_FIELDS if k not in ("composer", "model", "seed")}
        if shown > 1:
            settings_kept["variation"] = which  # which of the link's variations this is
        uid = gallery.save(title, token, {k: v for k, v in kinds.items() if v is not None},
                           composer=str(values["composer"]), model=str(values["model"]),
                           key=key_name(estimate_key(piece)).replace("b ", "♭ ") if len(piece) else "",
                           seconds=piece.duration_seconds, notes=len(piece), settings=settings_kept,
                           seed=int(values["seed"]) if values["seed"] is not None else None, link=link,
                           prompt=prompt_of(str(values["composer"]), example, upload),
                           variant=variant_of(str(values["model"]), settings_kept))
    except MaiaError as e:
        raise gr.Error(str(e)) from None
    except OSError as e:  # the prompt is gone, or the temp folder is full
        raise gr.Error(f"cannot save: {e.strerror or e}") from None
    return f"saved to the gallery as {uid}" + (f" (variation {which})" if shown > 1 else "")


def save_controls(gallery, token, files, status, inputs, variations, serving=None) -> None:
    """A title box, which variation, and a Save to gallery button (in the current layout). ``files``: each
    variation's downloads; ``status``: the playground's status line (a piece is saved once it is done);
    ``inputs``: [prompt_midi, *settings]; ``variations``: the variations slider (the choice follows it);
    ``serving``: the playground's (maia/serving.py)."""
    with gr.Row():
        title = gr.Textbox(label="Title", max_length=120, placeholder="a title for the gallery", scale=3,
                           elem_id="gallery-save-title")
        which = gr.Dropdown([1], value=1, label="Variation", scale=1, min_width=90, visible=False,
                            elem_id="gallery-save-variation")
        button = gr.Button("Save to gallery", size="sm", scale=1, interactive=gallery is not None,
                           elem_id="gallery-save")
    saved = gr.Textbox(label="Gallery", interactive=False, elem_id="gallery-saved")
    n = len(files)
    button.click(lambda t, tok, w, st, *rest: save_from_playground(gallery, t, tok, w, st, list(rest[:n]), *rest[n:],
                                                                   serving=serving),
                 [title, token, which, status, *files, *inputs], saved, api_visibility="private")
    variations.change(lambda v: gr.update(choices=list(range(1, int(v) + 1)), value=1, visible=int(v) > 1),
                      variations, which, api_visibility="private")


# ---- the Gallery tab --------------------------------------------------------------------------------------
def _label(p) -> str:
    return f"{p.title} — {p.composer}, {p.model}, {p.key or '?'}, {p.seconds:.0f} s" + (" ★" if p.shelf else "")


def browse(gallery, sort, composer, model, key, page, keep: bool = False):
    """The radio's choices (label, uid) for this page, and the page line. The selection is cleared (new filters,
    a deletion), or with ``keep`` left as it is in the browser when the answer comes (the tab opened again, Refresh):
    a piece clicked while the list was being fetched stays selected."""
    pieces, total = gallery.list(sort=sort, composer=None if composer == ALL else composer,
                                 model=None if model == ALL else model, key=None if key == ALL else key,
                                 page=max(0, int(page or 1) - 1))
    pages = max(1, -(-total // gallery.quotas.page_size))
    choices = gr.update(choices=[(_label(p), p.uid) for p in pieces], **({} if keep else {"value": None}))
    return choices, f"page {int(page or 1)} of {pages} · {total} pieces"


def show(gallery, uid, token, base_url=""):
    """Title, about, audio, roll, downloads, link and whether the delete button applies, of one piece."""
    p = gallery.get(uid) if uid else None
    if p is None:
        return "", "", None, None, None, "", gr.update(interactive=False)
    about = (f"{p.composer} · model {p.model} · {p.key} · {p.notes} notes · {p.seconds:.1f} s · seed {p.seed} · "
             f"{p.variant}" + (" · maia's works" if p.shelf else ""))
    files = [str(f) for f in named_copies(p).values()]
    return (p.title, about, str(p.files["wav"]) if "wav" in p.files else None,
            str(p.files["roll"]) if "roll" in p.files else None, files, base_url.split("?")[0] + "?" + p.link,
            gr.update(interactive=p.owned_by(token)))


DOWNLOADS = Path(tempfile.gettempdir()) / "maia-gallery-downloads"  # stored files under their titles, by hash
SUFFIXES = {"midi": ".mid", "wav": ".wav", "musicxml": ".musicxml", "roll": "-roll.png"}


def named_copies(p) -> dict[str, Path]:
    """The piece's stored files (named by their hashes) as copies named after its title, so that a download is
    "Nocturne.mid", not a hash: one folder per stored file (its content hash), made once and reused."""
    name = re.sub(r"[^\w\-., ]", "_", p.title).strip(" ._")[:80] or "maia"
    out = {}
    for kind, source in p.files.items():
        folder = DOWNLOADS / source.stem  # the file's sha256: the same name never holds other content
        target = folder / f"{name}{SUFFIXES.get(kind, source.suffix)}"
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            part = folder / f".{secrets.token_hex(8)}.part"  # another request may be copying it too
            shutil.copyfile(source, part)
            os.replace(part, target)
        out[kind] = target
    return {k: out[k] for k in SUFFIXES if k in out}


def sheet(gallery, uid) -> str:
    """The piece's sheet music as HTML: its stored MusicXML engraved by Verovio (maia.notation.engrave, as in
    the playground) when it is opened, or one line saying why there is none."""
    p = gallery.get(uid) if uid else None
    if p is None:
        return ""
    if "musicxml" not in p.files:
        return _line("No sheet music: this piece was saved without its MusicXML.")
    try:
        pages = engraved(str(p.files["musicxml"]))
    except (ImportError, OSError, ValueError) as e:  # no Verovio, the file is gone, or it cannot be read
        return _line(f"The sheet music could not be engraved: {e}")
    # Verovio draws black on transparent: a white sheet keeps it legible in a dark theme
    return ('<div class="gallery-sheet" style="background:#fff;overflow-x:auto;padding:4px">'
            + "".join(pages) + "</div>")


def _line(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


UNSAFE_SVG = re.compile(r"<\s*(script|foreignobject|iframe)|<[^>]*\son\w+\s*=|javascript:", re.IGNORECASE)


@functools.lru_cache(maxsize=16)  # keyed by the stored file's name, its content hash: an entry never goes stale
def engraved(path: str) -> tuple[str, ...]:
    """The SVG pages of a stored MusicXML file. Verovio writes the text of a title as escaped text; a page with
    a script, a foreign object or an event handler anyway is refused (ValueError), never shown."""
    from maia.notation import engrave

    pages = tuple(engrave(Path(path).read_text(encoding="utf-8")))
    if any(UNSAFE_SVG.search(svg) for svg in pages):
        raise ValueError("the engraving holds markup that is not music")
    return pages


def delete(gallery, uid, token) -> str:
    try:
        gallery.delete(uid, token)
    except MaiaError as e:
        raise gr.Error(str(e)) from None
    return "deleted"


# ---- the Listen tab ---------------------------------------------------------------------------------------
VOTES = (("A is better", "a"), ("The same", "same"), ("B is better", "b"))  # the vote buttons, left to right


def _voting(on: bool) -> tuple:
    """The updates of the three vote buttons: on while a pair waits for this browser's vote."""
    return tuple(gr.update(interactive=on) for _ in VOTES)


def next_pair(gallery, token):
    """(pair state, audio A, audio B, the line above them, *the vote buttons). The order is random; the state
    stays on the server."""
    try:
        pair = gallery.next_pair(token)
    except MaiaError as e:
        raise gr.Error(str(e)) from None
    if pair is None:
        return None, None, None, "no pair left for you to judge: thank you!", *_voting(False)
    a, b = random.sample(pair, 2)
    return ({"a": a.uid, "b": b.uid, "a_variant": a.variant, "b_variant": b.variant},
            str(a.files["wav"]), str(b.files["wav"]), "Two continuations of the same prompt. Which is better?",
            *_voting(True))


def vote(gallery, pair, choice, token):
    """(pair state, which was which, *the vote buttons): the vote is kept and the buttons are off until the next
    pair. A second vote on the same pair (a click that raced the buttons' update) only says which was which."""
    if not pair:
        raise gr.Error("press Next pair first")
    if not pair.get("voted"):
        try:
            gallery.vote(pair["a"], pair["b"], choice, token)
        except MaiaError as e:
            raise gr.Error(str(e)) from None
        pair = {**pair, "voted": choice}
    return pair, f"A was {pair['a_variant']}; B was {pair['b_variant']}.", *_voting(False)


def board(gallery):
    from maia.gallery.ratings import leaderboard

    rows = [[r.variant, round(r.rating), f"[{r.low:.0f}, {r.high:.0f}]", r.games, round(r.score, 2)]
            for r in leaderboard(gallery.games())]
    return rows or [["(no votes yet)", 0.0, "", 0, 0.0]]


def build_tabs(gallery, problem: str, token) -> None:
    """The Gallery and Listen tabs, inside the caller's ``gr.Tabs`` or Blocks."""
    with gr.Tab("Gallery") as gallery_tab:
        if gallery is None:
            gr.Textbox(value=f"The gallery is not available: {problem}", label="Gallery", interactive=False)
        else:
            facets = gallery.facets()
            with gr.Row():
                sort = gr.Radio(["newest", "rated"], value="newest", label="Order")
                composer = gr.Dropdown([ALL, *facets["composer"]], value=ALL, label="Composer")
                model = gr.Dropdown([ALL, *facets["model"]], value=ALL, label="Model")
                key = gr.Dropdown([ALL, *facets["key"]], value=ALL, label="Key")
                page_no = gr.Number(value=1, minimum=1, precision=0, label="Page")
            where = gr.Markdown()
            pieces = gr.Radio([], label="Pieces (★: maia's works)", elem_id="gallery-pieces")
            title = gr.Textbox(label="Title", interactive=False, elem_id="gallery-title")
            about = gr.Textbox(label="About", interactive=False)
            audio = gr.Audio(label="Listen", type="filepath", interactive=False, elem_id="gallery-audio")
            roll = gr.Image(label="Piano roll", type="filepath", interactive=False)
            score = gr.HTML("", label="Sheet music", elem_id="gallery-sheet")
            downloads = gr.File(label="MIDI, WAV, MusicXML, roll", file_count="multiple", interactive=False)
            link = gr.Textbox(label="Permalink: opens the playground with this piece's settings", interactive=False,
                              elem_id="gallery-link")
            remove = gr.Button("Delete (your own pieces only)", variant="stop", size="sm", interactive=False,
                               elem_id="gallery-delete")
            deleted = gr.Markdown(elem_id="gallery-deleted")
            filters = [sort, composer, model, key, page_no]
            for c in filters:
                c.change(lambda *v: browse(gallery, *v), filters, [pieces, where], api_visibility="private")

            def _show(uid, tok, request: gr.Request):
                base = request.headers.get("referer") or "/" if request else "/"
                return show(gallery, uid, tok, base)

            pieces.change(_show, [pieces, token], [title, about, audio, roll, downloads, link, remove],
                          api_visibility="private").then(lambda uid: sheet(gallery, uid), pieces, score,
                                                         api_visibility="private")  # engraved after the rest shows
            remove.click(lambda uid, tok: delete(gallery, uid, tok), [pieces, token], deleted,
                         api_visibility="private").then(lambda *v: browse(gallery, *v), filters, [pieces, where],
                                                        api_visibility="private")
            refresh = gr.Button("Refresh", size="sm")
            for again in (refresh.click, gallery_tab.select):  # the list again, the selection kept
                again(lambda *v: browse(gallery, *v, keep=True), filters, [pieces, where], api_visibility="private")
    with gr.Tab("Listen") as listen_tab:
        if gallery is None:
            gr.Textbox(value=f"The listening room is not available: {problem}", label="Listen", interactive=False)
            return
        pair = gr.State(None)
        line = gr.Markdown("Two continuations of the same prompt, by two models or settings, in random order.")
        start = gr.Button("Next pair", variant="primary")
        with gr.Row():
            audio_a = gr.Audio(label="A", type="filepath", interactive=False, elem_id="listen-a")
            audio_b = gr.Audio(label="B", type="filepath", interactive=False, elem_id="listen-b")
        with gr.Row():  # off until a pair waits for a vote, and again once voted
            buttons = [(gr.Button(name, interactive=False, elem_id=f"listen-vote-{choice}"), choice)
                       for name, choice in VOTES]
        votes = [button for button, _ in buttons]
        reveal = gr.Textbox(label="Which was which", interactive=False, elem_id="listen-reveal")
        table = gr.Dataframe(headers=["model and settings", "rating (Elo)", "95% interval", "votes", "score"],
                             label="Leaderboard (Bradley–Terry, ties as half wins)", interactive=False, elem_id="listen-board",
                             datatype=["str", "number", "str", "number", "number"])
        start.click(lambda tok: next_pair(gallery, tok), token, [pair, audio_a, audio_b, line, *votes],
                    api_visibility="private").then(lambda: "", None, reveal, api_visibility="private")
        for button, choice in buttons:
            button.click(lambda p, tok, c=choice: vote(gallery, p, c, tok), [pair, token], [pair, reveal, *votes],
                         api_visibility="private").then(lambda: board(gallery), None, table, api_visibility="private")
        start.click(lambda: board(gallery), None, table, api_visibility="private")
        listen_tab.select(lambda: board(gallery), None, table, api_visibility="private")
