"""Piano-roll pictures of a Piece, drawn with matplotlib's object API (``Figure`` + ``FigureCanvasAgg``, never
pyplot), so concurrent requests in a server never share a global figure.

Time runs along x in seconds, pitch up y with the Cs labelled (C4 = middle C = MIDI 60). With ``prompt_steps``
the notes that start before it (the prompt) and after it (maia's continuation) get two colours, with a dashed
line where the continuation starts. A note's opacity follows its velocity.

Every picture is drawn on one worker thread of this module's own. matplotlib keeps its open fonts per thread
(an LRU cache of 64, keyed by thread id), so a server drawing from Gradio's ever-new worker threads gained two
open font files per thread (bench/soak.py); on one thread it keeps two in all, and no two drawings overlap.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from maia.encoding import Piece

PROMPT_COLOR = "#2f6db5"  # blue
CONTINUATION_COLOR = "#e8702a"  # orange: the pair stays distinct for the common colour-vision deficiencies
MARKER_COLOR = "#444444"
BLACK_KEY_ROW = "#f0f0f0"  # light band behind the rows of black keys
BAR_LINE_COLOR = "#c8c8c8"
PITCH_MARGIN = 3  # semitones shown above the highest and below the lowest note
MIN_PITCH_SPAN = 24  # a few notes still get two octaves of context
MAX_BAR_LINES = 64  # beyond this only every k-th bar line is drawn
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """MIDI pitch -> scientific name, e.g. 60 -> 'C4', 70 -> 'A#4'."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def velocity_alpha(velocity: np.ndarray) -> np.ndarray:
    """Opacity of a note: 0.35 for the softest, 1 for velocity 127."""
    return 0.35 + 0.65 * np.clip(np.asarray(velocity, np.float64), 0, 127) / 127


def _pitch_range(pitch: np.ndarray) -> tuple[int, int]:
    lo, hi = int(pitch.min()) - PITCH_MARGIN, int(pitch.max()) + PITCH_MARGIN
    if hi - lo < MIN_PITCH_SPAN:
        grow = MIN_PITCH_SPAN - (hi - lo)
        lo, hi = lo - grow // 2, hi + grow - grow // 2
    return max(lo, 0), min(hi, 127)


def draw(
    piece: Piece,
    prompt_steps: int | None = None,
    *,
    width_px: int = 1000,
    height_px: int = 360,
    dpi: int = 100,
    title: str | None = None,
) -> Figure:
    """A piano roll of ``piece`` as a matplotlib Figure of ``width_px`` x ``height_px`` pixels.

    Notes starting before ``prompt_steps`` (grid steps) are drawn as the prompt, later ones as the
    continuation (0: every note is maia's, orange as on the page); ``None`` draws every note as prompt. An
    empty piece gives an empty roll saying so."""
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    # Margins in pixels, so labels keep their room at any size.
    left_px, right_px = 46, 14
    fig.subplots_adjust(
        left=left_px / width_px, right=1 - right_px / width_px, bottom=36 / height_px,
        top=1 - (28 if title else 12) / height_px,
    )
    ax = fig.add_subplot()
    sps = piece.seconds_per_step
    notes = piece.notes

    if len(notes):
        lo, hi = _pitch_range(notes[:, 2])
        end_s = piece.end_step * sps
    else:
        lo, hi, end_s = 48, 72, 8.0
    if prompt_steps is not None:
        end_s = max(end_s, prompt_steps * sps)
    x_max = end_s * 1.02 if end_s > 0 else 1.0
    ax.set_xlim(0, x_max)
    ax.set_ylim(lo - 0.5, hi + 0.5)

    # Background: bands on the black-key rows, then bar lines.
    black = np.array([p for p in range(lo, hi + 1) if p % 12 in (1, 3, 6, 8, 10)])
    if len(black):
        rows = np.stack([np.zeros(len(black)), black - 0.5, np.full(len(black), x_max), black + 0.5], axis=1)
        ax.add_collection(PolyCollection(_boxes(*rows.T), facecolors=BLACK_KEY_ROW, linewidths=0, zorder=0))
    if piece.time_signature:
        num, den = piece.time_signature
        bar_s = num * 4 / den * piece.steps_per_quarter * sps
        n_bars = int(end_s / bar_s) + 1 if bar_s > 0 else 0
        every = max(1, -(-n_bars // MAX_BAR_LINES))
        bars = np.arange(every, n_bars + 1, every) * bar_s
        ax.vlines(bars[bars < x_max], lo - 0.5, hi + 0.5, colors=BAR_LINE_COLOR, linewidths=0.8, zorder=1)

    if len(notes):
        start = notes[:, 0] * sps
        end = (notes[:, 0] + notes[:, 1]) * sps
        pitch = notes[:, 2].astype(np.float64)
        is_prompt = np.ones(len(notes), bool) if prompt_steps is None else notes[:, 0] < prompt_steps
        colors = np.where(is_prompt[:, None], to_rgba(PROMPT_COLOR), to_rgba(CONTINUATION_COLOR))  # (N, 4)
        colors[:, 3] = velocity_alpha(notes[:, 3])
        edges = colors.copy()
        edges[:, :3] *= 0.6  # a darker outline separates repeated notes and keeps very short ones visible
        # One collection for every note: fast even for 10k notes.
        boxes = _boxes(start, pitch - 0.42, end, pitch + 0.42)
        ax.add_collection(PolyCollection(boxes, facecolors=colors, edgecolors=edges, linewidths=0.5, zorder=2))
    else:
        ax.text(
            0.5, 0.5, "no notes yet", transform=ax.transAxes, ha="center", va="center", fontsize=12, color="#888888"
        )

    if prompt_steps and len(notes):  # 0: composed from nothing, no prompt to mark
        x = prompt_steps * sps
        ax.axvline(x, color=MARKER_COLOR, linestyle="--", linewidth=1.2, zorder=3)
        ax.text(
            x,
            1.0,
            " continuation \u25b8",
            transform=ax.get_xaxis_transform(),
            ha="left",
            va="top",
            fontsize=8,
            color=MARKER_COLOR,
            zorder=4,
        )

    # Pitch axis: a labelled tick on each C, a small tick on every semitone.
    cs = [p for p in range(lo, hi + 1) if p % 12 == 0]
    ax.set_yticks(cs, [note_name(p) for p in cs], fontsize=8)
    # The semitones' small ticks as one collection: as minor ticks, matplotlib made a Tick object (two lines, two
    # labels) for each of up to 128 rows, which cost about as much as drawing the whole picture.
    axes_px = width_px - left_px - right_px  # the axes' width in pixels
    rows = np.arange(lo, hi + 1, dtype=np.float64)
    ax.add_collection(LineCollection(np.stack([np.stack([np.full_like(rows, -2 * dpi / 72 / axes_px), rows], -1),
                                               np.stack([np.zeros_like(rows), rows], -1)], axis=1),
                                     colors="black", linewidths=0.6, transform=ax.get_yaxis_transform(), clip_on=False,
                                     zorder=5, gid="semitone-ticks"), autolim=False)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("seconds", fontsize=8, labelpad=2)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig


def _boxes(x0, y0, x1, y1) -> np.ndarray:
    """Rectangles as PolyCollection vertices, (N, 4, 2)."""
    return np.stack(
        [np.stack([x0, y0], -1), np.stack([x0, y1], -1), np.stack([x1, y1], -1), np.stack([x1, y0], -1)], axis=1
    )


_DRAWER_NAME = "maia-pianoroll"
_DRAWER = ThreadPoolExecutor(1, thread_name_prefix=_DRAWER_NAME)


def _on_drawer(job, *args):
    """``job(*args)`` on the drawing thread; its result or its exception."""
    if threading.current_thread().name.startswith(_DRAWER_NAME):  # already there: waiting on itself would hang
        return job(*args)
    return _DRAWER.submit(job, *args).result()


def _image(piece, prompt_steps, kw) -> np.ndarray:
    fig = draw(piece, prompt_steps, **kw)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _png(piece, path, prompt_steps, kw) -> Path:
    fig = draw(piece, prompt_steps, **kw)
    fig.savefig(path, format="png", dpi=fig.dpi)
    return path


def to_image(piece: Piece, prompt_steps: int | None = None, **kw) -> np.ndarray:
    """The piano roll as an RGB uint8 array (height_px, width_px, 3)."""
    return _on_drawer(_image, piece, prompt_steps, kw)


def save_png(piece: Piece, path: str | Path, prompt_steps: int | None = None, **kw) -> Path:
    """Draws the piano roll and writes it as a PNG of exactly width_px x height_px pixels."""
    return _on_drawer(_png, piece, Path(path), prompt_steps, kw)
