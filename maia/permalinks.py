"""Permalinks: the page's settings and its prompt in a URL's query string, and back.

    url = permalink("http://127.0.0.1:7860/", "x.mid", {"composer": "bach", "tokens": 512}, serving)
    values = from_link({"composer": "bach", "tokens": "512", "upload": "<hash>"}, serving)  # the page's values

A prompt travels as an example's name (``example=lacrimosa.mid``) or, for an upload, as the hash of its content
(``upload=<32 hex digits>``): the file is kept, under its own name, in the Serving's ``uploads_dir`` for as long
as request folders are (``limits.keep_files``). A link never carries a path, and a value the page would not send
is left out rather than trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlencode

from maia.encoding import MIDI_SUFFIXES
from maia.options import LENGTH_UNITS, composer_choices
from maia.playground import example_prompts
from maia.serving import Serving

LINK_FIELDS = ("composer", "model", "tokens", "top_k", "temperature", "seed", "variations", "key", "key_strength",
               "lowest", "highest", "density", "length_unit", "length", "end", "form")


def permalink(base_url: str, prompt_midi, values: dict, serving: Serving | None = None) -> str:
    """A link that restores the page: the settings, and the prompt as an example's name or, for an
    upload, the hash of its content (kept in ``serving.uploads_dir`` for ``limits.keep_files``, swept as
    request folders are)."""
    serving = serving or Serving.default()
    uploads = serving.uploads_dir
    query = {k: values[k] for k in LINK_FIELDS if values.get(k) not in (None, "")}
    if prompt_midi:
        path = Path(prompt_midi)
        examples = {p.name: p for p in example_prompts()}
        if path.name in examples and path.read_bytes() == examples[path.name].read_bytes():
            query["example"] = path.name
        else:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:32]
            uploads.mkdir(parents=True, exist_ok=True)
            serving.sweep(uploads)  # links older than the request folders' lifetime lose their upload
            (uploads / digest).mkdir(exist_ok=True)  # the file keeps its name, in its hash's folder
            (uploads / digest / _safe_name(path.name)).write_bytes(data)
            os.utime(uploads / digest)  # a link made again keeps its upload as long again
            query["upload"] = digest
    return base_url.split("?")[0] + "?" + urlencode(query)


def from_link(query: dict, serving: Serving | None = None) -> dict:
    """The page's values from a permalink's query (unknown keys ignored; a bad value is left out); the
    prompt under "prompt_midi" (an example's path or a linked upload's), if the link names one."""
    serving = serving or Serving.default()
    uploads = serving.uploads_dir
    out = {}
    for k in LINK_FIELDS:
        if k in query:
            v = str(query[k])
            if k in ("tokens", "top_k", "seed", "variations", "lowest", "highest"):
                if re.fullmatch(r"\d{1,9}", v):
                    out[k] = int(v)
            elif k in ("temperature", "key_strength", "density", "length"):
                if re.fullmatch(r"\d{1,3}(\.\d{1,6})?", v):  # plain decimals: no nan, inf or exponents
                    out[k] = float(v)
            elif k == "end":
                if v.lower() in ("true", "false", "1", "0"):
                    out[k] = v.lower() in ("true", "1")
            elif k == "length_unit":
                if v in LENGTH_UNITS:
                    out[k] = v
            elif k == "form":
                if re.fullmatch(r"[A-Za-z]{1,12}", v):  # letters (maia.form.plan checks them when composing)
                    out[k] = v
            else:
                out[k] = v[:64]
    examples = {p.name: p for p in example_prompts()}
    if query.get("example") in examples:
        out["prompt_midi"] = str(examples[query["example"]])
    elif re.fullmatch(r"[0-9a-f]{32}", str(query.get("upload", ""))):
        folder = uploads / query["upload"]
        named = sorted(folder.iterdir()) if folder.is_dir() else []
        if named:
            out["prompt_midi"] = str(named[0])
        elif (uploads / f"{query['upload']}.mid").is_file():  # a link made before uploads kept their names
            out["prompt_midi"] = str(uploads / f"{query['upload']}.mid")
    if "composer" in out:  # only a composer the link's model (or the default one) knows
        choices = serving.model_choices()
        model = out.get("model") if out.get("model") in choices else next(iter(choices), None)
        if out["composer"] not in [value for _, value in composer_choices(model, serving)]:
            del out["composer"]
    return out


def _safe_name(name: str) -> str:
    """An uploaded file's name, fit to be a file name here: letters, digits, ``._- ``; a MIDI suffix."""
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    stem = re.sub(r"[^\w.\- ]", "_", stem).strip(" .")[:80] or "upload"
    return stem + (suffix if suffix in MIDI_SUFFIXES else ".mid")
