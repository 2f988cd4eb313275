"""Steering at sampling time, with no retraining: masks added to the model's logits.

    controls = Controls(key=(2, "minor"), key_strength=0.9, lowest=36, highest=96, density=1.5)
    generate(model, prompt.ids, config, vocab, controls=controls)

- **Key lock**: a note-on outside the key's scale has its probability multiplied by ``1 - key_strength``
  (0: no effect; 1: never). Minor keys allow the natural, harmonic and melodic minor scales' degrees (so
  the leading tone is in).
- **Register**: a note-on below ``lowest`` or above ``highest`` is never sampled.
- **Late lock** (``key_from``): the key lock holds only from that many grid steps into the continuation,
  so the music may travel first and is drawn home afterwards (maia/form.py's homecoming before an ending).
- **Density**: every note-on's probability is multiplied by ``sqrt(density)`` and every wait's divided by
  it (1: as the model likes; 2: notes twice as likely against moving on in time, so more notes per
  second; 0.5: fewer). Time only moves on with waits, so the notes per second follow the balance of
  note-ons against waits (measured in docs/playground.md).
A merge token carrying several note-ons gets the product of their factors. Note-offs are never masked, so
every key can always be released.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from maia.errors import InputError
from maia.vocab import Vocab

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10, 11)}  # minor: with the leading tone
DENSITY_RANGE = (0.25, 4.0)


@dataclass(frozen=True)
class Controls:
    key: tuple[int, str] | None = None  # (tonic pitch class 0..11, "major" | "minor"), or None: no lock
    key_strength: float = 1.0  # 0..1: how strongly notes outside the scale are held back
    lowest: int | None = None  # MIDI pitch of the lowest key that may be struck
    highest: int | None = None  # and the highest
    density: float = 1.0  # note-ons x sqrt(density), waits / sqrt(density)
    key_from: int = 0  # grid steps into the continuation before the key lock starts (0: from the first note)

    def validate(self) -> Controls:
        if self.key is not None and (self.key[1] not in SCALES or not 0 <= int(self.key[0]) < 12):
            raise InputError(f"key must be (0..11, 'major' or 'minor'), not {self.key}")
        if not 0.0 <= self.key_strength <= 1.0:
            raise InputError(f"key strength must be 0..1, not {self.key_strength}")
        lo, hi = self.lowest, self.highest
        if (lo is not None and not 0 <= lo <= 127) or (hi is not None and not 0 <= hi <= 127) or (
                lo is not None and hi is not None and hi - lo < 11):
            raise InputError(f"the register must span at least an octave of MIDI pitches (got {lo}..{hi})")
        if not DENSITY_RANGE[0] <= self.density <= DENSITY_RANGE[1]:
            raise InputError(f"density must be {DENSITY_RANGE[0]}..{DENSITY_RANGE[1]}, not {self.density}")
        if not isinstance(self.key_from, numbers.Integral) or self.key_from < 0:
            raise InputError(f"key_from must be a whole number of steps >= 0, not {self.key_from!r}")
        return self

    @property
    def active(self) -> bool:
        return (self.key is not None and self.key_strength > 0) or self.lowest is not None or \
            self.highest is not None or self.density != 1.0


def pitch_factor(pitch: int, c: Controls) -> float:
    """The factor on one note-on's probability (0 = never)."""
    f = math.sqrt(c.density)
    if (c.lowest is not None and pitch < c.lowest) or (c.highest is not None and pitch > c.highest):
        return 0.0
    if c.key is not None and (pitch - c.key[0]) % 12 not in SCALES[c.key[1]]:
        f *= 1.0 - c.key_strength
    return f


def control_bias(controls: Controls, vocab: Vocab, n_logits: int, device="cpu") -> torch.Tensor:
    """(n_logits,) additive log-factors: log(factor) on note-ons and waits (and merges holding them), 0
    elsewhere."""
    bias = torch.zeros(n_logits)
    cfg = vocab.config
    on_lo, on_hi = vocab.on_offset + cfg.pitch_lo, vocab.on_offset + cfg.pitch_hi
    w_lo, w_hi = vocab.wait_offset + 1, vocab.wait_offset + cfg.max_wait
    for i in range(len(vocab)):
        factor = 1.0
        for t in vocab.expand_id(i):
            if on_lo <= t <= on_hi:
                factor *= pitch_factor(t - vocab.on_offset, controls)
            elif w_lo <= t <= w_hi:
                factor /= math.sqrt(controls.density)
        if factor != 1.0:
            bias[i] = math.log(factor) if factor > 0 else float("-inf")
    return bias.to(device)


def in_scale_share(notes, key: tuple[int, str]) -> float:
    """Share of notes (N, 4) whose pitch class is in the key's scale (for measuring the lock)."""
    if len(notes) == 0:
        return float("nan")
    return float(sum((int(p) - key[0]) % 12 in SCALES[key[1]] for p in notes[:, 2]) / len(notes))


def parse_key(text: str | None) -> tuple[int, str] | None:
    """'D minor', 'f# major', 'Bb minor' -> (pitch class, mode); None for None or ''."""
    if not text:
        return None
    parts = text.strip().split()
    names = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
    if len(parts) != 2 or parts[1].lower() not in SCALES or not parts[0] or parts[0][0].lower() not in names:
        raise InputError(f"key {text!r}: write it as a tonic and a mode, e.g. 'D minor' or 'F# major'")
    tonic = names[parts[0][0].lower()]
    for accidental in parts[0][1:]:
        if accidental in "#♯":
            tonic += 1
        elif accidental in "b♭":
            tonic -= 1
        else:
            raise InputError(f"key {text!r}: unknown accidental {accidental!r}")
    return tonic % 12, parts[1].lower()
