"""maia.gallery.page: the Gallery and Listen tabs build in a gr.Blocks, serve on 127.0.0.1, and their handlers
show titles as typed, keep deleting to the owner and reveal a pair only after the vote."""

from __future__ import annotations

import socket
import urllib.request

import gradio as gr
import pytest

from maia.gallery import page
from maia.gallery.store import Gallery

ME, YOU = "a" * 32, "b" * 32
TITLE = "<script>alert('x')</script><b>bold</b>"


def _gallery(tmp_path):
    g = Gallery(tmp_path)
    uids = [g.save(TITLE if i == 0 else f"piece {i}", ME, {"midi": b"MThd%d" % i, "wav": b"RIFF%d" % i},
                   composer="mozart", model="piano", key="D minor", prompt="example:lacrimosa.mid · mozart",
                   variant=f"v{i}", link=f"seed={i}") for i in range(2)]
    return g, uids


def test_handlers(tmp_path):
    g, (first, second) = _gallery(tmp_path)
    choices, where = page.browse(g, "newest", page.ALL, page.ALL, page.ALL, 1)
    assert [u for _, u in choices["choices"]] == [second, first] and where == "page 1 of 1 · 2 pieces"
    assert choices["choices"][1][0].startswith(TITLE)  # a radio label: Gradio renders it as text
    title, about, audio, roll, files, link, remove = page.show(g, first, ME, "http://127.0.0.1:7860/?x=1")
    assert "D minor" in about and audio.endswith(".wav") and roll is None and len(files) == 2
    assert title == TITLE and link == "http://127.0.0.1:7860/?seed=0" and remove["interactive"] is True
    assert page.show(g, first, YOU)[-1]["interactive"] is False
    with pytest.raises(gr.Error):
        page.delete(g, first, YOU)
    assert page.show(g, "../../etc/passwd", ME)[0] == ""
    state, a, b, line = page.next_pair(g, YOU)
    assert {state["a"], state["b"]} == {first, second} and a.endswith(".wav") and b.endswith(".wav")
    assert "v0" not in line and "v1" not in line  # blind until the vote
    revealed = page.vote(g, state, "a", YOU)
    assert revealed == f"A was {state['a_variant']}; B was {state['b_variant']}."
    assert page.next_pair(g, YOU)[0] is None
    assert [row[0] for row in page.board(g)] == [state["a_variant"], state["b_variant"]]
    assert page.delete(g, first, ME) == "deleted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("broken", [False, True])
def test_the_tabs_build_and_serve(tmp_path, broken):
    g, _ = _gallery(tmp_path)
    with gr.Blocks() as demo:
        token = page.browser_token(demo)
        files = gr.File(file_count="multiple")
        settings = [gr.Textbox() for _ in page.SETTING_FIELDS]
        page.save_controls(None if broken else g, token, files, [gr.File(), *settings])
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
