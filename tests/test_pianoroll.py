"""Tests for maia/pianoroll.py: picture size, the prompt/continuation colours in the pixels, bar lines, the empty
roll, and drawing from several threads at once."""

import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection

from maia.encoding import Piece
from maia.pianoroll import draw, note_name, save_png, to_image, velocity_alpha


def scale_piece(bars=4, ts=(4, 4)) -> Piece:
    """Eighth-note scales over ``bars`` bars of 4/4 at 120 qpm, velocities rising 40..120."""
    n = bars * 8
    onset = np.arange(n) * 6
    pitch = 48 + (np.arange(n) * 2) % 36
    vel = np.linspace(40, 120, n).astype(np.int64)
    return Piece(np.stack([onset, np.full(n, 6), pitch, vel], 1).astype(np.int64), 12, 120.0, ts)


def colour_pixels(img: np.ndarray) -> tuple[int, int]:
    """(blue-ish, orange-ish) pixel counts: the prompt and continuation colours at any opacity over the
    white or light-grey background; black, grey and white pixels count as neither."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    blue = (b - r > 40) & (b > g)
    orange = (r - b > 40) & (r > g)
    return int(blue.sum()), int(orange.sum())


def test_note_names_and_alpha():
    assert [note_name(p) for p in (21, 60, 61, 108)] == ["A0", "C4", "C#4", "C8"]
    assert velocity_alpha(np.array([0, 127])).tolist() == [0.35, 1.0]


@pytest.mark.parametrize("size", [(1000, 360), (640, 240)])
def test_image_size(size):
    w, h = size
    img = to_image(scale_piece(), 96, width_px=w, height_px=h)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8


def test_prompt_and_continuation_colours():
    blue, orange = colour_pixels(to_image(scale_piece(), prompt_steps=96))  # notes split half and half
    assert blue > 500 and orange > 500
    blue, orange = colour_pixels(to_image(scale_piece(), prompt_steps=None))
    assert blue > 1000 and orange == 0
    blue, orange = colour_pixels(
        to_image(scale_piece(), prompt_steps=200)
    )  # all prompt (ends at 192), nothing continued
    assert blue > 1000 and orange == 0


def test_continuation_marker_and_labels():
    ax = draw(scale_piece(), 96, title="my piece").axes[0]
    assert ax.get_title(loc="left") == "my piece"
    assert any("continuation" in t.get_text() for t in ax.texts)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["C3", "C4", "C5", "C6"]
    assert ax.get_xlabel() == "seconds"
    assert ax.get_xlim()[1] == pytest.approx(8.0 * 1.02)  # 4 bars of 4/4 at 120 qpm = 8 s


def test_notes_are_one_collection():
    polys = [c for c in draw(scale_piece(bars=300)).axes[0].collections if isinstance(c, PolyCollection)]
    assert len(polys) == 2  # the black-key rows and every note, however many
    assert len(polys[1].get_paths()) == 300 * 8


def test_bar_lines_follow_time_signature():
    def bar_lines(piece):
        lines = [c for c in draw(piece).axes[0].collections
                 if isinstance(c, LineCollection) and c.get_gid() != "semitone-ticks"]
        return sorted(seg[0][0] for c in lines for seg in c.get_segments())

    assert bar_lines(scale_piece(bars=4, ts=(4, 4))) == pytest.approx([2.0, 4.0, 6.0, 8.0])
    assert bar_lines(scale_piece(bars=4, ts=(6, 8))) == pytest.approx([1.5 * k for k in range(1, 6)])
    assert bar_lines(scale_piece(bars=4, ts=None)) == []


def test_empty_piece():
    fig = draw(Piece())
    assert any(t.get_text() == "no notes yet" for t in fig.axes[0].texts)
    img = to_image(Piece(), prompt_steps=0)
    assert img.shape == (360, 1000, 3) and colour_pixels(img) == (0, 0)


def test_save_png_size(tmp_path):
    path = save_png(scale_piece(), tmp_path / "roll.png", 96, width_px=800, height_px=300)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (800, 300)


def test_threads_draw_independently():
    pieces = [scale_piece(bars=b) for b in (2, 3, 4, 5)] * 2
    with ThreadPoolExecutor(4) as pool:
        images = list(pool.map(lambda p: to_image(p, 24), pieces))
    for a, b in zip(images[:4], images[4:], strict=True):
        assert np.array_equal(a, b)


def test_drawing_from_new_threads_opens_no_more_fonts(tmp_path):
    """matplotlib keeps fonts open per thread; a server's ever-new worker threads once each left two font
    files open (bench/soak.py). Drawn on pianoroll's own thread, the count stays put."""
    import os
    import threading

    from bench.soak import proc_sample

    def fonts_open() -> int:
        return sum(path.endswith((".ttf", ".otf")) for path in proc_sample(os.getpid(), 0.0, children=False).paths)

    save_png(scale_piece(), tmp_path / "first.png", 24)
    before = fonts_open()
    done = threading.Barrier(12)  # all alive at once: a finished thread's id may be given to the next

    def draw_and_wait(k):
        save_png(scale_piece(), tmp_path / f"{k}.png", 24)
        done.wait(timeout=60)

    threads = [threading.Thread(target=draw_and_wait, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert before > 0 and fonts_open() == before


def test_every_semitone_has_its_small_tick_left_of_the_roll():
    """One short dark tick left of the pitch axis on each semitone's row, the Cs' among them (drawn as one collection
    since the minor ticks, a matplotlib Tick object per row, cost as much as the whole picture); none between rows."""
    piece = scale_piece()
    fig = draw(piece, 96)
    ax = fig.axes[0]
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    height = img.shape[0]
    left = round(ax.transAxes.transform((0, 0))[0])  # the axis line's pixel column
    lo, hi = (round(v + 0.5) for v in ax.get_ylim())
    dark = lambda y: img[y, left - 2].sum() < 400  # noqa: E731 - two pixels left of the axis line
    for pitch in range(lo, hi):
        y = height - 1 - round(ax.transData.transform((0, pitch))[1])
        assert any(dark(y + d) for d in (-1, 0, 1)), f"no tick on pitch {pitch}'s row"
        mid = height - 1 - round(ax.transData.transform((0, pitch + 0.5))[1])
        assert not dark(mid), f"a tick between pitches {pitch} and {pitch + 1}"
