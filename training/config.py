"""Typed training settings: the [data] and [train] sections of a config, with defaults and checks.

    cfg = load_config("training/configs/piano.toml", ["--train.max_steps=10", "--fim_rate=0.25"])
    cfg.train.max_steps, cfg.data.fim_rate, cfg.model["n_layer"]

A TOML file in training/configs/ overrides the defaults below, and ``--section.key=value`` (or ``--key=value``
when only one section has that key) overrides the file. Values are converted to each field's type; an
unknown section or key, or a value of the wrong type, raises ConfigError naming it and the known keys,
before any data is read or any model is built. [model] is checked by the model's own config dataclass
(maia.models.build_model), so it stays a dict here.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import asdict, dataclass, field

from maia.errors import MaiaError


class ConfigError(MaiaError):
    """A training config that cannot be used; the message names the key and the known ones."""


@dataclass
class DataConfig:
    data_dir: str = "data/music21"  # a folder written by training.prepare
    seq_len: int = 512  # tokens per training window
    overlap: float = 0.5  # share of a window repeated by the next one
    transpose: bool = True  # each window in a random one of the 12 keys
    materialise: bool = False  # list all 12 transpositions instead of drawing one
    min_tokens: int = 0  # leave out pieces shorter than this (long-context runs)
    unknown_composer: float = 0.0  # share of windows that carry <composer:unknown>
    fim_rate: float = 0.0  # share of windows rearranged for fill-in-the-middle
    merges: int = 0  # n-gram merges learnt on the training split (0: plain notewise tokens)
    exclude_composers: list[str] = field(default_factory=list)  # leave-one-composer-out runs
    composer_weights: dict[str, float] = field(default_factory=dict)  # e.g. {pop = 0.5}: drawn less often


@dataclass
class TrainConfig:
    out: str = "runs/gpt"  # the run folder: checkpoint, log.csv, loss.png
    batch_size: int = 16
    lr: float = 6e-4  # peak learning rate, after warmup
    min_lr: float = 6e-5  # the cosine schedule's floor
    weight_decay: float = 0.1  # on matmul weights only
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 200
    max_steps: int = 5000
    max_minutes: float = 0.0  # a wall-clock budget; the schedule ends with it (0: none)
    grad_clip: float = 1.0
    eval_interval: int = 250  # steps between validation, CSV row and checkpoint
    eval_batches: int = 40
    seed: int = 1337
    device: str = "auto"  # cuda if available, else cpu
    compile: bool = False  # torch.compile the model
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; or bfloat16 / float32
    threads: int = 0  # torch threads on CPU (0: torch's default)
    resume: bool = False  # go on from the checkpoint in `out`
    workers: int = 0  # DataLoader worker processes
    init: str = ""  # start from this trained model folder's weights (training/warmstart.py)


@dataclass
class Config:
    model: dict
    data: DataConfig
    train: TrainConfig

    def to_dict(self) -> dict:
        return {"model": dict(self.model), "data": asdict(self.data), "train": asdict(self.train)}


SECTIONS = {"data": DataConfig, "train": TrainConfig}


def _convert(value, tp, where: str):
    """``value`` as type ``tp`` (int, float, bool, str, list[str], dict[str, float]), or ConfigError."""
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, bool):
                return value
            raise TypeError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if tp is str:
            return str(value)
        if origin is list:
            if not isinstance(value, list):
                raise TypeError
            return [_convert(v, typing.get_args(tp)[0], where) for v in value]
        if origin is dict:
            if not isinstance(value, dict):
                raise TypeError
            kt, vt = typing.get_args(tp)
            return {_convert(k, kt, where): _convert(v, vt, where) for k, v in value.items()}
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{where}: {value!r} is not a valid {getattr(tp, '__name__', tp)}")


def _build(section: str, values: dict, source: str):
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
                          f"[{section}] knows {', '.join(known)}")
    return cls(**{k: _convert(v, hints[k], f"{source}: {section}.{k}") for k, v in values.items()})


def _parse_value(raw: str):
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string: --out=runs/x


def load_config(path: str | None, overrides: list[str]) -> Config:
    """Defaults <- TOML file <- ``--key=value`` overrides, checked and typed (see the module docstring)."""
    raw: dict[str, dict] = {"model": {"kind": "gpt"}, "data": {}, "train": {}}
    source = path or "defaults"
    if path:
        try:
            with open(path, "rb") as f:
                loaded = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the config ({e})") from None
        for section, values in loaded.items():
            if section not in raw or not isinstance(values, dict):
                raise ConfigError(f"{path}: unknown section [{section}]; sections are [model], [data], [train]")
            raw[section].update(values)
    fields = {s: {f.name for f in dataclasses.fields(c)} for s, c in SECTIONS.items()}
    for o in overrides:
        key, eq, value = o.removeprefix("--").partition("=")
        if not eq:
            raise ConfigError(f"override {o!r}: expected --key=value")
        if "." in key:
            section, key = key.split(".", 1)
            if section not in raw:
                raise ConfigError(f"override {o!r}: unknown section {section!r}; sections are model, data, train")
        else:
            owners = [s for s, names in fields.items() if key in names] or (["model"] if key in raw["model"] else [])
            if len(owners) != 1:
                raise ConfigError(f"override {o!r}: no section has the key {key!r}; name it as section.key "
                                  f"(data knows {', '.join(sorted(fields['data']))}; train knows "
                                  f"{', '.join(sorted(fields['train']))})")
            section = owners[0]
        raw[section][key] = _parse_value(value)
    data = _build("data", raw["data"], source)
    train = _build("train", raw["train"], source)
    return Config(dict(raw["model"]), data, train)
