"""Concurrent users, small: app.py in a subprocess with the tiny models (conftest.py's app_server), 5 generate
calls at once through gradio_client (python -m bench.load does the same with 16 calls and the real model, and
prints the figures); an upload over the limit (MAIA_MAX_MIDI_BYTES, 2 MiB by default) is refused by the server
itself."""

import httpx
import pytest

from bench import load
from maia.limits import Limits

pytestmark = pytest.mark.slow


def test_concurrent_calls_each_get_their_own_music(app_server, tiny_midi):
    url, pid = app_server
    requests = load.make_requests(5, tokens=32, prompt=tiny_midi)  # the 2-bar arpeggio: quick to render
    assert {r.prompt is None for r in requests} == {True, False}  # with and without an uploaded prompt
    report = load.run_load(url, pid, requests, timeout=120)
    limit = Limits().max_input_bytes  # the server refuses larger uploads before any handler runs
    for size, status in [(limit + 1, 413), (1000, 200)]:
        upload = httpx.post(url + "gradio_api/upload", files={"files": ("x.mid", b"MThd" + bytes(size - 4))})
        assert upload.status_code == status, upload.text
    assert report.problems == []
    assert report.all_completed and report.all_match_alone and report.distinct_outputs
    assert 0 < report.p50_s <= report.p95_s <= report.max_s < 120
    assert report.rss_before_mb > 0 and report.rss_peak_mb - report.rss_before_mb < 500, report


def test_an_idle_server_sleeps(app_server):
    """Gradio's queue looked for work every millisecond, idle or not: 9% of a core for a server doing nothing, for as
    long as it runs (app.py sets its polls to IDLE_POLL_SECONDS). One quiet second of the four below is enough: a
    request of an earlier test may still be finishing."""
    import time

    from cpu_profile import process_seconds

    _, pid = app_server
    seconds = []
    for _ in range(4):
        before = process_seconds(pid)
        time.sleep(1.0)
        seconds.append(process_seconds(pid) - before)
    assert min(seconds) < 0.04, f"app.py busy while idle: {seconds} CPU seconds per second"
