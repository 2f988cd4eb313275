"""The page's settings: the choices it offers (composers, keys, registers, forms), and the values it (or an API client) sends back, checked.

    config = settings(512, 20, 1.0, 7, 2, max_tokens=limits.max_tokens)       # -> SamplingConfig
    controls = steering("D minor", 1.0, 21, 108, 1.0, prompt, vocab)          # -> maia.controls.Controls | None
    bars, seconds, end, form = length_settings(16, None, True, "ABA")

Values come as the page sends them (floats from sliders, None from an empty box) or as anything an API client
sends; each bad one is an InputError in one line naming the setting. Nothing here samples, loads or writes.
"""

from __future__ import annotations

import math
import re

from maia.errors import InputError
from maia.generate import Prompt, SamplingConfig, ids_to_piece
from maia.serving import Serving
from maia.vocab import Vocab

KEY_OFF, KEY_OF_PROMPT = "off", "the prompt's key"
PIANO_RANGE = (21, 108)  # A0..C8: a register control at these bounds is no control
FORMS = ("none", "ABA", "AABA", "rondo")  # the page's Form dropdown (maia/form.py plans any letters from A)
LENGTH_UNITS = ("bars", "seconds", "tokens")  # the page's length control


# ---- numbers ---------------------------------------------------------------------------------------------
def whole_number(value, what: str) -> int:
    """A setting that counts (tokens, top-k, seed...) as sent by the page or an API client: an int, a float
    with nothing after the point, or digits as text. InputError naming ``what`` for anything else, and for a
    float too large to hold the number exactly (a seed typed as 99999999999999999999999 in the page)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        if abs(value) > 2**53:
            raise InputError(f"{what} is too large: a whole number from 0 to 2**62 - 1, please")
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,30}\s*", value):
        return int(value)
    raise InputError(f"{what} must be a whole number, not {shown(value)}")


def real_number(value, what: str) -> float:
    """A setting that measures (temperature, strength, density) as sent: a finite number, or one as text."""
    try:
        number = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise InputError(f"{what} must be a number, not {shown(value)}")
    return number


def shown(value) -> str:
    """A value as an error message quotes it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def settings(tokens, top_k, temperature, seed, variations, max_tokens: int) -> SamplingConfig:
    """The page's values (floats from sliders, None from an empty box, anything from an API client) -> a
    validated SamplingConfig of at most ``max_tokens`` new tokens; InputError, in one line naming the setting,
    for a bad one."""
    seed = None if seed is None or seed == "" else whole_number(seed, "seed")
    config = SamplingConfig(max_new_tokens=whole_number(tokens, "tokens"), top_k=whole_number(top_k, "top-k"),
                            temperature=real_number(temperature, "temperature"), seed=seed,
                            variations=whole_number(variations, "variations"))
    return config.validate(max_tokens)


# ---- composer --------------------------------------------------------------------------------------------
def composer_choices(name: str | None, serving: Serving | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs for the composer dropdown: the composers of ``serving``'s model called ``name``,
    "unknown" last."""
    names = [c for c in (serving or Serving.default()).vocab_of(name).composers if c != "unknown"]
    return [(c.replace("_", " ").title(), c) for c in names] + [("Any (unknown)", "unknown")]


def composer_for(name: str | None, composer: str | None, serving: Serving | None = None) -> tuple[str, str | None]:
    """The composer to keep when the page switches to the model called ``name``: ``composer`` when that model
    knows it, else the model's first, with a line saying so."""
    choices = composer_choices(name, serving)
    if composer in [value for _, value in choices]:
        return composer, None
    label = str(composer).replace("_", " ").title()
    return choices[0][1], f"the {name} model does not know {label}: the composer is now {choices[0][0]}"


# ---- steering --------------------------------------------------------------------------------------------
def key_choices() -> list[str]:
    """The key-lock dropdown: off, the prompt's key, then the 24 keys."""
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    return [KEY_OFF, KEY_OF_PROMPT] + [f"{n} {m}" for m in ("major", "minor") for n in names]


def register_choices() -> list[tuple[str, int]]:
    """The register's keys for the page's Lowest / Highest key: (note name, MIDI key), A0 (21) to C8 (108)."""
    names = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
    return [(f"{names[k % 12]}{k // 12 - 1}", k) for k in range(PIANO_RANGE[0], PIANO_RANGE[1] + 1)]


def steering(key, key_strength, lowest, highest, density, prompt: Prompt, vocab: Vocab):
    """The page's steering settings -> maia.controls.Controls (None when all are off); InputError for a
    bad one. ``key`` is KEY_OFF, KEY_OF_PROMPT (Krumhansl-Schmuckler on the prompt) or a key name."""
    from maia.controls import Controls, parse_key
    from maia.metrics import estimate_key

    strength, dens = real_number(key_strength, "key strength"), real_number(density, "density")
    lo, hi = whole_number(lowest, "lowest key"), whole_number(highest, "highest key")
    lock = None
    if key and key != KEY_OFF:
        if key == KEY_OF_PROMPT:
            if len(prompt.ids) <= 2:
                raise InputError("the prompt's key needs a prompt: upload a MIDI file or pick a key")
            tonic, mode, _ = estimate_key(ids_to_piece(prompt.ids, vocab, prompt))
            lock = (tonic, mode) if tonic >= 0 else None
        else:
            lock = parse_key(str(key))
    lo_, hi_ = (None if lo <= PIANO_RANGE[0] else lo), (None if hi >= PIANO_RANGE[1] else hi)
    controls = Controls(key=lock, key_strength=strength, lowest=lo_, highest=hi_, density=dens).validate()
    return controls if controls.active else None


# ---- length, ending and form ---------------------------------------------------------------------------
def length_settings(bars, seconds, end, form_name) -> tuple[int | None, float | None, bool, str | None]:
    """The length, ending and form as sent by the page or an API client -> (bars, seconds, end, form), with
    None for no bars, no seconds, no form; InputError in one line for a bad value or a form or an ending
    without a length."""
    bars = None if bars is None or bars == "" else whole_number(bars, "bars")
    seconds = None if seconds is None or seconds == "" else real_number(seconds, "seconds")
    if isinstance(end, str) and end.strip().lower() in ("true", "false", "1", "0", ""):
        end = end.strip().lower() in ("true", "1")
    if end is None or (isinstance(end, int) and end in (0, 1)):  # (True and False are ints)
        end = bool(end)
    else:
        raise InputError(f"end must be true or false, not {shown(end)}")
    if form_name is not None and not isinstance(form_name, str):
        raise InputError(f"form must be a name such as ABA, AABA or rondo, not {shown(form_name)}")
    form_name = None if form_name is None or form_name.strip().lower() in ("", "none") else form_name.strip()
    if bars is None and seconds is None and (end or form_name):
        asked = "an ending in the home key" if end else f"form {form_name}"
        raise InputError(f"{asked} needs a length: give it in bars (or seconds)")
    return bars, seconds, end, form_name


def page_length(unit, length, end, form_name) -> tuple:
    """The page's length control (``unit`` one of LENGTH_UNITS, and a number) with its End and Form -> the
    (bars, seconds, end, form) ``stream`` takes; in tokens (the tokens setting) there is no end or form."""
    if unit not in LENGTH_UNITS:
        raise InputError(f"the length is in {', '.join(LENGTH_UNITS)}, not {shown(unit)}")
    if unit == "tokens":
        return None, None, False, None
    if length is None or length == "":
        raise InputError(f"give the length in {unit}")
    return (length, None, end, form_name) if unit == "bars" else (None, length, end, form_name)
