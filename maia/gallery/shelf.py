"""maia's works: a curated shelf composed by the shipped models with fixed seeds.

    python -m maia gallery seed [--tokens 256]      # seed(gallery, limits): composes what is missing

Each work is a prompt, a composer, a model, its settings and a seed; its id is a hash of them, so running
``seed`` again composes nothing that is already there (hidden works included: the operator's choice
stands). Works on the same prompt by different models or settings are the listening room's first pairs:
the Lacrimosa by all three shipped models, the chorale at two settings.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from maia.gallery.store import Gallery
from maia.registry import PROMPTS_DIR as PROMPTS  # assets/prompts/, or maia/assets/prompts/ when pip-installed


@dataclass(frozen=True)
class Work:
    title: str
    prompt: str  # a file in assets/prompts/
    composer: str
    model: str
    top_k: int = 5
    temperature: float = 1.0
    seed: int = 1


SHELF = (
    Work("Lacrimosa, completed by the piano GPT", "lacrimosa.mid", "mozart", "piano"),
    Work("Lacrimosa, completed by the sparse GPT", "lacrimosa.mid", "mozart", "sparse"),
    Work("Lacrimosa, completed by the LSTM", "lacrimosa.mid", "mozart", "lstm"),
    Work("After Bach's chorale BWV 66.6 (top-k 5)", "bach_chorale_bwv66_6.mid", "bach", "piano", seed=2),
    Work("After Bach's chorale BWV 66.6 (top-k 20, warmer)", "bach_chorale_bwv66_6.mid", "bach", "piano", top_k=20,
         temperature=1.2, seed=2),
    Work("Maple Leaf Rag, continued", "joplin_maple_leaf_rag.mid", "pop", "piano", seed=3),
)


def variant_of(model: str, settings: dict) -> str:
    """What a piece stands for in the ratings: its model and the settings that change its music."""
    out = f"{model} · top-k {settings.get('top_k', 5)} · T {float(settings.get('temperature', 1.0)):g}"
    key = settings.get("key")
    if key and key != "off":
        out += f" · key {key} ({float(settings.get('key_strength', 1.0)):g})"
    if (settings.get("lowest") or 21) > 21 or (settings.get("highest") or 108) < 108:
        out += f" · keys {settings.get('lowest', 21)}-{settings.get('highest', 108)}"
    if float(settings.get("density") or 1.0) != 1.0:
        out += f" · density {float(settings['density']):g}"
    return out


def prompt_of(composer: str, example: str | None = None, upload: str | None = None) -> str:
    """What a piece continues, for pairing: an example prompt, an upload's hash, or nothing, with the composer."""
    source = f"example:{example}" if example else f"upload:{upload}" if upload else "nothing"
    return f"{source} · {composer}"


def work_uid(work: Work, tokens: int) -> str:
    text = f"{work.prompt}|{work.composer}|{work.model}|{tokens}|{work.top_k}|{work.temperature:g}|{work.seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seed(gallery: Gallery, limits, tokens: int = 256, works=SHELF,
         progress: Callable[[str], None] = print) -> list[str]:
    """Composes the works not yet in the gallery and saves them on the shelf; returns the uids added."""
    from maia import outputs
    from maia.checkpoint import load_model, models_root, resolve_model
    from maia.encoding import read
    from maia.generate import SamplingConfig, build_prompt, generate_ids, ids_to_piece
    from maia.metrics import estimate_key, key_name
    from maia.synth import SynthUnavailable

    added, models = [], {}
    for work in works:
        uid = work_uid(work, tokens)
        if gallery.get(uid, include_hidden=True) is not None:
            progress(f"already there: {work.title} ({uid})")
            continue
        if work.model not in models:
            models[work.model] = load_model(resolve_model(work.model, models_root(limits.models_dir)),
                                            device=limits.torch_device())
        model, vocab, _ = models[work.model]
        prompt = build_prompt(vocab, work.composer, read(PROMPTS / work.prompt, vocab.config),
                              max_tokens=limits.max_prompt_tokens)
        config = SamplingConfig(max_new_tokens=tokens, top_k=work.top_k, temperature=work.temperature,
                                seed=work.seed).validate(limits.max_tokens)
        piece = ids_to_piece(generate_ids(model, prompt.ids, config, vocab)[0], vocab, prompt)
        settings = {"tokens": tokens, "top_k": work.top_k, "temperature": work.temperature, "variations": 1}
        with tempfile.TemporaryDirectory(prefix="maia-shelf-") as tmp:
            tmp = Path(tmp)
            try:
                files = outputs.write(piece, midi=tmp / "piece.mid", wav=tmp / "piece.wav", roll=tmp / "roll.png",
                                      musicxml=tmp / "piece.musicxml", title=work.title,
                                      subtitle=f"maia — model {work.model}, seed {work.seed}",
                                      prompt_steps=prompt.steps, soundfont=limits.soundfont or None)
            except SynthUnavailable as e:  # no FluidSynth: keep the MIDI, the roll and the score
                progress(f"no audio for {work.title}: {e}")
                files = outputs.write(piece, midi=tmp / "piece.mid", roll=tmp / "roll.png",
                                      musicxml=tmp / "piece.musicxml", title=work.title,
                                      subtitle=f"maia — model {work.model}, seed {work.seed}", prompt_steps=prompt.steps)
            kinds = {"midi": files.midi, "wav": files.audio, "musicxml": files.musicxml, "roll": files.roll}
            link = urlencode({"composer": work.composer, "model": work.model, **settings, "seed": work.seed,
                              "example": work.prompt})
            gallery.save(work.title, None, {k: v for k, v in kinds.items() if v is not None}, shelf=True, uid=uid,
                         composer=work.composer, model=work.model, key=key_name(estimate_key(piece)).replace("b ", "♭ "),
                         seconds=piece.duration_seconds, notes=len(piece), settings=settings, seed=work.seed,
                         link=link, prompt=prompt_of(work.composer, example=work.prompt),
                         variant=variant_of(work.model, settings))
        added.append(uid)
        progress(f"composed: {work.title} ({uid}, {len(piece)} notes, {piece.duration_seconds:.0f} s)")
    return added
