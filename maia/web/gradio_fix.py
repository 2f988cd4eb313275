"""A fix for a bug in Gradio's page (gradio 6.31.0, the version requirements.txt pins): an open page never idles.

The "Loading..." status tracker that Gradio shows while a page loads starts a timer that asks for an animation frame
at every frame, to count the seconds. The tracker is removed when the page has loaded, but its timer is never
stopped, so every open page of every Gradio 6.31 app asks for 60 frames a second for as long as it is open. In
headless chromium that is 0.074-0.083 of a core for an idle page of maia, and 0.021-0.026 with the fix (docs/testing.md,
Run 14); in a user's browser it is a repaint loop on a page that shows nothing moving.

The fix is one condition in Gradio's own statustracker module: the timer stops when its tracker's element is gone,
as it already stops when the status leaves "pending". ``routes()`` serves that module with the change, ahead of
Gradio's /assets route (app.py: ``launch(app_kwargs={"routes": ...})``), from the installed file. Where the module
or the line is not found (another Gradio build), ``routes()`` is empty, Gradio's own file is served, and
tests/test_browser.py's idle-page test fails, to say so.
"""

from __future__ import annotations

from pathlib import Path

# statustracker's timer: ``function ze(){me(()=>{F(Pe,(performance.now()-w(de))/1e3),W&&ze()})}``: W is "the timer
# runs", U the tracker's element (bind:this), null once the tracker is removed
LOOP = "W&&ze()})}"
FIXED = "W&&U&&ze()})}"


def assets_folder() -> Path:
    import gradio

    return Path(gradio.__file__).resolve().parent / "templates" / "frontend" / "assets"


def fixed_statustracker(folder: Path | None = None) -> tuple[str, bytes] | None:
    """(the module's file name, its text with the fix), or None where no statustracker module has the line once."""
    for path in sorted((folder or assets_folder()).glob("statustracker-*.js")):
        text = path.read_text(encoding="utf-8")
        if text.count(LOOP) == 1:
            return path.name, text.replace(LOOP, FIXED).encode("utf-8")
    return None


def routes() -> list:
    """Starlette routes serving the fixed module at Gradio's own address for it (/assets/<name>), or none."""
    from starlette.responses import Response
    from starlette.routing import Route

    found = fixed_statustracker()
    if found is None:
        return []
    name, body = found

    async def statustracker(request):
        return Response(body, media_type="text/javascript")

    return [Route(f"/assets/{name}", statustracker, methods=["GET"])]
