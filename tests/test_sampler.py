"""maia/sampler.py: sampling in processes of their own gives the very steps of maia.generate, stops when
asked, passes errors on in their own words, and survives a process that dies."""

import os
import signal

import pytest

from maia.checkpoint import CheckpointError, load_model
from maia.controls import Controls
from maia.errors import InputError, ServerError
from maia.generate import SamplingConfig, build_prompt, generate, infill
from maia.sampler import SamplerPool

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pool():
    p = SamplerPool(2, "cpu", 1)
    yield p
    pids = p.pids
    p.close()
    with pytest.raises(ServerError, match="shutting down"):
        p.generate("any", [1], SamplingConfig(max_new_tokens=1))
    for pid in pids:  # every process has exited (and was reaped)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _local(folder, prompt_ids, config, controls=None):
    model, vocab, _ = load_model(folder)
    return list(generate(model, prompt_ids, config, vocab, controls=controls))


def test_steps_are_those_of_maia_generate(pool, tiny_models_dir):
    folder = tiny_models_dir / "gpt"
    vocab = load_model(folder)[1]
    ids = build_prompt(vocab, "bach").ids
    config = SamplingConfig(max_new_tokens=40, seed=7, variations=2)
    controls = Controls(key=(2, "minor"), density=2.0)
    assert list(pool.generate(folder, ids, config, controls)) == _local(folder, ids, config, controls)
    assert list(pool.generate(folder, ids, config)) == _local(folder, ids, config)


def test_a_set_length_is_filled_as_maia_generate_fills_it(pool, tiny_models_dir):
    """fill_steps (the page's length in bars) reaches the process: the same steps, each row ending on <end>."""
    folder = tiny_models_dir / "gpt"
    model, vocab, _ = load_model(folder)
    ids = build_prompt(vocab, "bach").ids
    config = SamplingConfig(max_new_tokens=200, seed=2, variations=2)
    want = list(generate(model, ids, config, vocab, fill_steps=96))
    assert list(pool.generate(folder, ids, config, fill_steps=96)) == want
    assert all(vocab.end_id in [s[i] for s in want] for i in range(2)) and len(want) < 200


def test_infill_steps_are_those_of_maia_infill(pool, tiny_models_dir):
    folder = tiny_models_dir / "fim"
    model, vocab, _ = load_model(folder)
    prefix = [*build_prompt(vocab, "bach").ids[:2], vocab.stoi["p60"], vocab.stoi["wait6"]]
    suffix = [vocab.stoi["p64"], vocab.stoi["wait6"]]
    config = SamplingConfig(max_new_tokens=12, seed=3)
    want = list(infill(model, prefix, suffix, 12, config, vocab))
    assert list(pool.infill(folder, prefix, suffix, 12, config)) == want
    assert want[-1] == [vocab.fim_end_id] or len(want) == 12


def test_close_mid_stream_frees_the_process(pool, tiny_models_dir):
    folder = tiny_models_dir / "gpt"
    ids = build_prompt(load_model(folder)[1], "mozart").ids
    before = pool.pids
    for _ in range(3):  # more streams than processes: each close gave its process back
        steps = pool.generate(folder, ids, SamplingConfig(max_new_tokens=500, seed=1))
        assert len(next(steps)) == 1
        steps.close()
        steps.close()  # twice is harmless
        assert list(steps) == []
    assert pool.pids == before
    assert len(list(pool.generate(folder, ids, SamplingConfig(max_new_tokens=5, seed=1)))) == 5


def test_errors_come_back_in_their_own_words(pool, tiny_models_dir):
    folder = tiny_models_dir / "gpt"
    with pytest.raises(InputError, match="empty prompt"):
        list(pool.generate(folder, [], SamplingConfig(max_new_tokens=5)))
    vocab = load_model(tiny_models_dir / "fim")[1]
    with pytest.raises(InputError, match="not trained to fill in the middle"):
        list(pool.infill(folder, [vocab.stoi["<composer:bach>"]], [], 4, SamplingConfig(max_new_tokens=4)))
    with pytest.raises(CheckpointError, match="missing does not exist"):
        list(pool.generate(tiny_models_dir / "missing", [1], SamplingConfig(max_new_tokens=5)))
    ids = build_prompt(vocab, "bach").ids  # the processes serve on
    assert len(list(pool.generate(folder, ids, SamplingConfig(max_new_tokens=5, seed=1)))) == 5


def test_a_process_that_dies_fails_one_request_and_is_replaced(pool, tiny_models_dir):
    folder = tiny_models_dir / "gpt"
    ids = build_prompt(load_model(folder)[1], "bach").ids
    steps = pool.generate(folder, ids, SamplingConfig(max_new_tokens=4000, seed=1))
    next(steps)
    dead = steps.worker.proc.pid
    os.kill(dead, signal.SIGKILL)
    with pytest.raises(ServerError, match="sampling process stopped"):
        list(steps)
    assert dead not in pool.pids and len(pool.pids) == 2
    config = SamplingConfig(max_new_tokens=20, seed=2)
    assert list(pool.generate(folder, ids, config)) == _local(folder, ids, config)


def test_the_playground_composes_and_regenerates_the_same_music_in_a_sampler_process(pool, tiny_models_dir, tiny_midi):
    from maia import playground
    from maia.encoding import read
    from maia.limits import Limits
    from maia.serving import Serving

    limits = Limits(models_dir=str(tiny_models_dir))
    here, there = Serving(limits), Serving(limits, pool=pool)  # sampling in this thread, in the pool's processes

    def final(run, serving):
        *_, last = run(serving)
        return [read(o.midi).notes.tolist() for o in last.outputs]

    def compose(serving):
        return playground.stream(str(tiny_midi), "bach", "gpt", 48, 5, 1.0, 1, 2, interval=0.0, audio=False,
                                 serving=serving)

    def regenerate(serving):
        return playground.regenerate(str(tiny_midi), 1, 3, "bach", "fim", 5, 1.0, 4, interval=0.0, audio=False,
                                     serving=serving)

    assert [final(compose, there), final(regenerate, there)] == [final(compose, here), final(regenerate, here)]
    steps = []  # a stream closed early (the user pressed Stop) gives its process back
    for update in compose(there):
        steps.append(update)
        if len(steps) == 2:
            break
    assert len(list(pool.generate(tiny_models_dir / "gpt", [1, 2], SamplingConfig(max_new_tokens=3, seed=1)))) == 3
    assert pool._idle.qsize() == 2
