"""The notewise vocabulary: token <-> id, special tokens, JSON save/load, optional n-gram merges.

Token families (ids are laid out in this order so that note ids never move when composers change):

    <pad> <start> <end>                 special tokens
    v1 .. v<n_velocity_bins>            dynamics level, emitted only when it changes
    wait1 .. wait<max_wait>             advance time by n grid steps
    p<lo> .. p<hi>                      note on
    endp<lo> .. endp<hi>                note off
    <composer:unknown> <composer:NAME>  one per composer of the training corpus
    <fim:prefix> <fim:suffix> <fim:middle> <fim:end>
                                        fill-in-the-middle markers (only in vocabularies built with fim=True)
    <m:a+b+...>                         optional n-gram merges, learnt BPE-style (see maia/merges.py)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

PAD, START, END = "<pad>", "<start>", "<end>"
FIM_TOKENS = ("<fim:prefix>", "<fim:suffix>", "<fim:middle>", "<fim:end>")
UNKNOWN_COMPOSER = "unknown"


@dataclass(frozen=True)
class EncodingConfig:
    steps_per_quarter: int = 12  # grid resolution: 12 makes 16ths (3) and 8th triplets (4) exact
    max_wait: int = 48  # longest single wait token in steps (one 4/4 bar); longer gaps use several
    n_velocity_bins: int = 8  # dynamics levels v1..v8, each 16 MIDI velocities wide
    pitch_lo: int = 21  # A0, lowest piano key; lower pitches fold up by octaves
    pitch_hi: int = 108  # C8, highest piano key; higher pitches fold down by octaves
    max_open_steps: int = 8 * 48  # a note never closed by the sequence is cut after 8 bars of 4/4

    def __post_init__(self):
        if self.pitch_hi - self.pitch_lo < 11:
            raise ValueError("pitch range must span at least an octave so that folding terminates")
        if not (1 <= self.n_velocity_bins <= 127 and self.max_wait >= 1 and self.steps_per_quarter >= 1):
            raise ValueError(f"invalid encoding config: {self}")


def composer_token(name: str) -> str:
    return f"<composer:{normalize_composer(name)}>"


def normalize_composer(name: str | None) -> str:
    """Composer names are case-insensitive single words: 'J.S. Bach' -> 'j.s._bach'."""
    name = (name or "").strip().lower().replace(" ", "_")
    return name or UNKNOWN_COMPOSER


@dataclass
class Vocab:
    """Maps notewise tokens to ids and back. Built from an EncodingConfig and the corpus's composers."""

    config: EncodingConfig = field(default_factory=EncodingConfig)
    composers: tuple[str, ...] = ()
    merges: tuple[tuple[int, int], ...] = ()  # merge k = (left id, right id), ids of earlier tokens
    fim: bool = False  # with the four fill-in-the-middle markers (after the composers, before merges)

    def __post_init__(self):
        c = self.config
        self.composers = tuple(
            dict.fromkeys(normalize_composer(x) for x in (UNKNOWN_COMPOSER, *self.composers))
        )
        self.merges = tuple(tuple(int(i) for i in m) for m in self.merges)
        toks = [PAD, START, END]
        self.velocity_offset = len(toks)
        toks += [f"v{i}" for i in range(1, c.n_velocity_bins + 1)]
        self.wait_offset = len(toks) - 1  # wait<n> has id wait_offset + n
        toks += [f"wait{i}" for i in range(1, c.max_wait + 1)]
        self.on_offset = len(toks) - c.pitch_lo  # p<pitch> has id on_offset + pitch
        toks += [f"p{p}" for p in range(c.pitch_lo, c.pitch_hi + 1)]
        self.off_offset = len(toks) - c.pitch_lo
        toks += [f"endp{p}" for p in range(c.pitch_lo, c.pitch_hi + 1)]
        self.composer_offset = len(toks)
        toks += [composer_token(x) for x in self.composers]
        self.fim_offset = len(toks)
        toks += list(FIM_TOKENS) if self.fim else []
        self.base_size = len(toks)
        self.merge_runs: list[tuple[int, ...]] = []  # merge k expands to this run of base ids
        for left, right in self.merges:
            if not (0 <= left < len(toks) and 0 <= right < len(toks)):
                raise ValueError(f"merge ({left}, {right}) refers to an id not yet defined")
            run = self.expand_id(left) + self.expand_id(right)
            self.merge_runs.append(run)
            toks.append("<m:" + "+".join(toks[i] for i in run) + ">")
        self.itos: list[str] = toks
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(toks)}
        if len(self.stoi) != len(toks):
            raise ValueError("duplicate tokens in vocabulary (repeated merge?)")
        self.pad_id, self.start_id, self.end_id = 0, 1, 2
        if self.fim:
            self.prefix_id, self.suffix_id, self.middle_id, self.fim_end_id = range(self.fim_offset, self.fim_offset + 4)

    def __len__(self) -> int:
        return len(self.itos)

    # ---- lookups -------------------------------------------------------------------------------
    def composer_id(self, name: str | None) -> int:
        """Id of a composer token; unknown names map to <composer:unknown>."""
        return self.stoi.get(composer_token(name or UNKNOWN_COMPOSER), self.composer_offset)

    def find_composer(self, name: str | None) -> str | None:
        """Case-insensitive match of a user-typed name against the vocabulary's composers."""
        key = normalize_composer(name)
        if key in self.composers:
            return key
        hits = [c for c in self.composers if key in c]
        return hits[0] if len(hits) == 1 else None

    def expand_id(self, i: int) -> tuple[int, ...]:
        """The base ids a token stands for: itself, or the run of a merge token."""
        return self.merge_runs[i - self.base_size] if i >= self.base_size else (i,)

    def is_composer(self, i: int) -> bool:
        return self.composer_offset <= i < self.fim_offset

    @property
    def fim_ids(self) -> list[int]:
        """The fill-in-the-middle markers' ids (empty without fim)."""
        return list(range(self.fim_offset, self.base_size))

    @property
    def special_ids(self) -> list[int]:
        """Ids that may not appear inside a piece: <pad>, <start>, every composer token and the
        fill-in-the-middle markers."""
        return [self.pad_id, self.start_id, *range(self.composer_offset, self.base_size)]

    def ids(self, tokens) -> list[int]:
        """Tokens -> ids; raises KeyError naming the first unknown token."""
        try:
            return [self.stoi[t] for t in tokens]
        except KeyError as e:
            raise KeyError(f"unknown token {e.args[0]!r}") from None

    def tokens(self, ids) -> list[str]:
        itos = self.itos
        return [itos[int(i)] for i in ids]

    # ---- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "composers": list(self.composers),
            "merges": [list(m) for m in self.merges],
            **({"fim": True} if self.fim else {}),  # absent in vocabularies from before fill-in-the-middle
            "size": len(self),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        try:
            composers = d["composers"]
            if isinstance(composers, str) or not all(isinstance(c, str) for c in composers):
                raise TypeError("composers must be a list of names")  # a bare string would split into letters
            v = cls(EncodingConfig(**d["config"]), tuple(composers), tuple(map(tuple, d.get("merges", []))),
                    bool(d.get("fim", False)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"invalid vocabulary description: {e}") from None
        if "size" in d and d["size"] != len(v):
            raise ValueError(f"vocabulary size mismatch: stored {d['size']}, rebuilt {len(v)}")
        return v

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_dict(json.loads(Path(path).read_text()))
