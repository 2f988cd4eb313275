"""maia/web/gradio_fix.py: the fixed status tracker is Gradio's own module, changed in its timer only, and app.py's
server serves it in place of Gradio's (the idle page itself: tests/test_browser.py)."""

from maia.web import gradio_fix


def test_the_pinned_gradio_has_the_line_once_and_the_fix_changes_only_it():
    found = gradio_fix.fixed_statustracker()
    assert found is not None, "Gradio's statustracker module has changed: is its idle timer still leaking?"
    name, body = found
    original = (gradio_fix.assets_folder() / name).read_bytes()
    assert body.replace(gradio_fix.FIXED.encode(), gradio_fix.LOOP.encode()) == original
    assert len(body) == len(original) + len(gradio_fix.FIXED) - len(gradio_fix.LOOP)


def test_another_build_is_left_alone(tmp_path):
    (tmp_path / "statustracker-X.js").write_text("function t(){r(()=>{x&&t()})}")
    assert gradio_fix.fixed_statustracker(tmp_path) is None
    assert gradio_fix.routes() != []  # the installed one is fixed
