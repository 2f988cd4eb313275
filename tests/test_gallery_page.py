"""maia.gallery.page: the Gallery and Listen tabs build in a gr.Blocks, serve on 127.0.0.1, and their handlers
show titles as typed, keep deleting to the owner and reveal a pair only after the vote."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from maia.encoding import read
from maia.gallery.store import Gallery
from maia.notation import musicxml

ME, YOU = "a" * 32, "b" * 32
TITLE = "<script>alert('x')</script><b>bold</b>"
LACRIMOSA = Path(__file__).resolve().parents[1] / "assets" / "prompts" / "lacrimosa.mid"


# gradio (imported by maia.gallery.page) is imported by the tests that use it, not when the module is collected:
# 4-5 s of CPU that a pytest-xdist worker which runs none of them is spared (conftest.py's IN_PROCESS_APP).
@pytest.fixture(scope="module")
def gr():
    import gradio

    return gradio


@pytest.fixture(scope="module")
def page():
    from maia.gallery import page

    return page


def _gallery(tmp_path):
    g = Gallery(tmp_path)
    uids = [g.save(TITLE if i == 0 else f"piece {i}", ME, {"midi": b"MThd%d" % i, "wav": b"RIFF%d" % i},
                   composer="mozart", model="piano", key="D minor", prompt="example:lacrimosa.mid · mozart",
                   variant=f"v{i}", link=f"seed={i}") for i in range(2)]
    return g, uids


def test_handlers(tmp_path, gr, page):
    g, (first, second) = _gallery(tmp_path)
    choices, where = page.browse(g, "newest", page.ALL, page.ALL, page.ALL, 1)
    assert [u for _, u in choices["choices"]] == [second, first] and where == "page 1 of 1 · 2 pieces"
    assert choices["choices"][1][0].startswith(TITLE)  # a radio label: Gradio renders it as text
    assert choices["value"] is None and "value" not in page.browse(g, "newest", page.ALL, page.ALL, page.ALL, 1,
                                                                    keep=True)[0]  # the tab again: kept
    title, about, audio, roll, files, link, remove = page.show(g, first, ME, "http://127.0.0.1:7860/?x=1")
    assert "D minor" in about and audio.endswith(".wav") and roll is None and len(files) == 2
    assert title == TITLE and link == "http://127.0.0.1:7860/?seed=0" and remove["interactive"] is True
    assert page.show(g, first, YOU)[-1]["interactive"] is False
    with pytest.raises(gr.Error):
        page.delete(g, first, YOU)
    assert page.show(g, "../../etc/passwd", ME)[0] == ""
    state, a, b, line, *buttons = page.next_pair(g, YOU)
    assert {state["a"], state["b"]} == {first, second} and a.endswith(".wav") and b.endswith(".wav")
    assert "v0" not in line and "v1" not in line  # blind until the vote
    assert [u["interactive"] for u in buttons] == [True] * 3  # a pair waits for the vote
    state, revealed, *buttons = page.vote(g, state, "a", YOU)
    assert revealed == f"A was {state['a_variant']}; B was {state['b_variant']}."
    assert [u["interactive"] for u in buttons] == [False] * 3  # off until the next pair
    # a second click on the same pair (one that raced the buttons' update) is no error and no second vote
    assert page.vote(g, state, "b", YOU)[1:] == (revealed, *buttons) and len(g.games()) == 1
    done, *_, line, b1, b2, b3 = page.next_pair(g, YOU)
    assert done is None and "no pair left" in line and not any(u["interactive"] for u in (b1, b2, b3))
    assert [row[0] for row in page.board(g)] == [state["a_variant"], state["b_variant"]]
    assert page.delete(g, first, ME) == "deleted"


def test_an_opened_piece_shows_its_engraved_score(tmp_path, page):
    g, (first, _) = _gallery(tmp_path)
    xml = musicxml(read(LACRIMOSA), title=TITLE, subtitle="model piano, seed 0")
    scored = g.save(TITLE, ME, {"midi": b"MThd", "musicxml": xml.encode()}, composer="mozart", model="piano")
    html = page.sheet(g, scored)
    assert html.count("<svg") >= 1 and 'class="note"' in html  # Verovio's pages, with their notes
    assert not page.UNSAFE_SVG.search(html)  # which the guard against markup that is not music lets through
    assert "<script" not in html and "<b>" not in html and "&lt;script&gt;" in html  # the title, as escaped text
    assert page.sheet(g, scored) == html  # the second opening comes from the cache
    # no MusicXML: one line says so; one Verovio cannot read: one line says that; no piece: nothing
    assert page.sheet(g, first) == "<p>No sheet music: this piece was saved without its MusicXML.</p>"
    bad = g.save("bad", ME, {"midi": b"MThd", "musicxml": b"<score/>"}, composer="mozart", model="piano")
    assert page.sheet(g, bad).startswith("<p>The sheet music could not be engraved: ")
    assert page.sheet(g, "../../etc/passwd") == "" and page.sheet(g, None) == ""


@pytest.mark.parametrize("svg", ['<svg><script>alert(1)</script></svg>', '<svg><g onload="alert(1)"/></svg>',
                                 '<svg><foreignObject><img src=x></foreignObject></svg>',
                                 '<svg><a xlink:href="javascript:alert(1)"/></svg>'])
def test_markup_that_is_not_music_is_never_shown(svg, page):
    assert page.UNSAFE_SVG.search(svg)
    assert not page.UNSAFE_SVG.search('<svg><text x="1">onload=&lt;script&gt;</text></svg>')  # text is text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("broken", [False, True])
def test_the_tabs_build_and_serve(tmp_path, broken, gr, page):
    g, _ = _gallery(tmp_path)
    with gr.Blocks() as demo:
        token = page.browser_token(demo)
        files = [gr.File(file_count="multiple") for _ in range(4)]  # each variation's downloads
        settings = [gr.Textbox() for _ in page.SETTING_FIELDS]
        page.save_controls(None if broken else g, token, files, gr.Markdown(), [gr.File(), *settings], gr.Slider(1, 4))
        page.build_tabs(None if broken else g, "gallery.sqlite3: corrupt" if broken else "", token)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                allowed_paths=page.allowed_paths(g))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert r.status == 200
        labels = [getattr(b, "label", None) for b in demo.blocks.values()]
        assert "Pieces (★: maia's works)" in labels or broken
    finally:
        demo.close()


def test_save_waits_for_the_finished_piece_and_takes_any_variation(tmp_path, gr, page):
    """Issue 23: Save clicked while the page still says "done: … writing the sheet music…" (MIDI and WAV, no
    MusicXML or roll yet) is refused in one line, not saved without them; once done, the finished files are saved,
    of the variation chosen."""
    from maia.encoding import Piece, normalize_notes
    from maia.vocab import EncodingConfig

    g = Gallery(tmp_path / "db")
    variations = []
    for v in (1, 2):
        folder = tmp_path / f"v{v}"
        folder.mkdir()
        onset = np.arange(8) * 12
        piece = Piece(normalize_notes(onset, onset + 12, 60 + v + onset // 12, np.full(8, 80), EncodingConfig()),
                      12, 100.0, (4, 4))
        piece.write_midi(folder / f"maia-{v}.mid")
        (folder / f"maia-{v}.wav").write_bytes(b"RIFF%d" % v)
        (folder / f"maia-{v}.musicxml").write_text(f"<score-partwise>{v}</score-partwise>")
        (folder / f"maia-{v}-roll.png").write_bytes(b"\x89PNG%d" % v)
        variations.append(sorted(str(f) for f in folder.iterdir()))
    settings = dict(composer="bach", model="piano", tokens=64, top_k=20, temperature=1.0, seed=7, variations=2,
                    key="off", key_strength=1.0, lowest=21, highest=108, density=1.0, length_unit="tokens",
                    length=16, end=False, form="none")
    values = [settings[k] for k in page.SETTING_FIELDS]
    sampling = "1/64 tokens · sampled at 90 tokens/s · piano on cpu"
    notating = "done: 64/64 tokens · sampled at 90 tokens/s · piano on cpu · writing the sheet music…"
    early = [[f for f in files if f.endswith((".mid", ".wav"))] for files in variations]  # that update's files
    for status, files in ((sampling, early), (notating, early)):
        with pytest.raises(gr.Error, match="still writing"):
            page.save_from_playground(g, "too soon", ME, 1, status, files, None, *values)
    assert g.list()[1] == 0, "nothing saved while the piece is unfinished"
    line = page.save_from_playground(g, "second", ME, 2, notating.split(" · writing")[0], variations, None, *values)
    saved = g.get(line.split(" as ")[1].split()[0])
    assert set(saved.files) == {"midi", "wav", "musicxml", "roll"} and saved.settings["variation"] == 2
    assert saved.files["wav"].read_bytes() == b"RIFF2", "variation 2's files, not variation 1's"
    after_undo = "piece 1 of 2 · " + notating.split(" · writing")[0]  # undo shows a finished piece
    assert page.finished(after_undo) and not page.finished(notating) and not page.finished(sampling)
    with pytest.raises(gr.Error, match="from 1 to 2"):
        page.save_from_playground(g, "third", ME, 3, after_undo, variations, None, *values)
