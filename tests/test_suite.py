"""The suite's own machinery (tests/conftest.py): its xdist_group marks reach pytest-xdist, so that one worker runs
each group (one app server and one chromium for the run, gradio imported by one worker, music21's scores parsed
once). pytest 9.2 with pytest-xdist 3.8 drops them without a word (pytest-dev/pytest-xdist#1386): the tests are
dealt out one by one, and each worker starts its own app server."""

import pytest


@pytest.mark.xdist_group("suite-check")
def test_a_group_mark_reaches_the_scheduler(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only a pytest-xdist worker under --dist loadgroup (make test) deals out groups")
    # the worker tells the scheduler a test's group in its node ID; a test without its group is scheduled alone
    assert request.node.nodeid.endswith("@suite-check"), request.node.nodeid
