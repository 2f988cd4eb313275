"""Tests for maia/vocab.py: the id layout checkpoints rely on, JSON save/load, rejection of bad
descriptions, and composer lookups."""

from __future__ import annotations

import json

import pytest

from maia.vocab import EncodingConfig, Vocab, composer_token, normalize_composer

# The default layout. Shipped checkpoints index their embeddings with these ids: a change here is a
# breaking change, not a refactor.
GOLDEN_IDS = {
    "<pad>": 0, "<start>": 1, "<end>": 2, "v1": 3, "v8": 10, "wait1": 11, "wait48": 58,
    "p21": 59, "p60": 98, "p108": 146, "endp21": 147, "endp60": 186, "endp108": 234, "<composer:unknown>": 235,
}  # fmt: skip


def test_default_ids_are_stable():
    v = Vocab()
    assert {t: v.stoi[t] for t in GOLDEN_IDS} == GOLDEN_IDS
    assert len(v) == 236 and (v.pad_id, v.start_id, v.end_id) == (0, 1, 2)
    assert v.itos == [*v.stoi]  # ids are 0..n-1 in order, no gaps or duplicates


def test_composers_and_merges_never_move_earlier_ids():
    base = Vocab()
    one = Vocab(composers=("bach",))
    three = Vocab(composers=("bach", "mozart", "chopin"))
    merged = Vocab(composers=("bach", "mozart", "chopin"), merges=((3, 98), (3, 186)))
    assert one.itos[: len(base)] == base.itos
    assert three.itos[: len(one)] == one.itos
    assert merged.itos[: len(three)] == three.itos
    assert merged.itos[len(three) :] == ["<m:v1+p60>", "<m:v1+endp60>"]


def test_tokens_ids_round_trip():
    v = Vocab(composers=("bach",), merges=((3, 98),))
    assert v.tokens(v.ids(v.itos)) == v.itos
    with pytest.raises(KeyError, match="'p200'"):
        v.ids(["p60", "p200"])


@pytest.mark.parametrize("vocab", [
    Vocab(),
    Vocab(EncodingConfig(max_wait=16, n_velocity_bins=32, pitch_lo=36, pitch_hi=96), composers=("Bach", "J.S. Bach")),
    Vocab(composers=("bach", "mozart"), merges=((3, 98), (238, 58), (239, 239))),  # merges of merges
])  # fmt: skip
def test_json_save_load_round_trip(vocab, tmp_path):
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert json.loads(path.read_text())["size"] == len(vocab)  # plain JSON, readable by anyone
    back = Vocab.load(path)
    assert back == vocab
    assert back.itos == vocab.itos and back.stoi == vocab.stoi and back.merge_runs == vocab.merge_runs
    assert Vocab.from_dict(vocab.to_dict()).itos == vocab.itos


def _good() -> dict:
    return Vocab(composers=("bach",), merges=((3, 98),)).to_dict()


BAD = {  # name -> how a good description is spoiled
    "not a dict": lambda d: ["config", "composers"],
    "none": lambda d: None,
    "no config": lambda d: {k: v for k, v in d.items() if k != "config"},
    "no composers": lambda d: {k: v for k, v in d.items() if k != "composers"},
    "unknown config key": lambda d: {**d, "config": {**d["config"], "tempo": 120}},
    "config not a dict": lambda d: {**d, "config": 12},
    "range below an octave": lambda d: {**d, "config": {**d["config"], "pitch_lo": 60, "pitch_hi": 65}},
    "zero velocity bins": lambda d: {**d, "config": {**d["config"], "n_velocity_bins": 0}},
    "string in config": lambda d: {**d, "config": {**d["config"], "max_wait": "48"}},
    "float in config": lambda d: {**d, "config": {**d["config"], "max_wait": 4.5}},
    "composers a string": lambda d: {k: v for k, v in {**d, "composers": "bach"}.items() if k != "size"},
    "composer not a string": lambda d: {**d, "composers": ["bach", 3]},
    "composers none": lambda d: {**d, "composers": None},
    "merge of three": lambda d: {**d, "merges": [[3, 98, 99]]},
    "merge of letters": lambda d: {**d, "merges": [["a", "b"]]},
    "merge of undefined id": lambda d: {**d, "merges": [[3, 10_000]]},
    "merge of negative id": lambda d: {**d, "merges": [[-1, 3]]},
    "merge repeated": lambda d: {**d, "merges": [[3, 98], [3, 98]], "size": d["size"] + 1},
    "size mismatch": lambda d: {**d, "size": d["size"] + 1},
}


@pytest.mark.parametrize("case", list(BAD))
def test_from_dict_rejects_bad_data(case):
    with pytest.raises(ValueError, match="vocabulary"):
        Vocab.from_dict(BAD[case](_good()))


def test_load_rejects_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text("{not json")
    with pytest.raises(ValueError):
        Vocab.load(path)


@pytest.mark.parametrize("cfg", [
    dict(pitch_lo=60, pitch_hi=70), dict(n_velocity_bins=0), dict(n_velocity_bins=128),
    dict(max_wait=0), dict(steps_per_quarter=0),
])  # fmt: skip
def test_encoding_config_validates(cfg):
    with pytest.raises(ValueError):
        EncodingConfig(**cfg)


COMPOSERS = ("Bach", "Mozart", "Schumann Robert", "schumann_clara", "Chopin", "mozart")


@pytest.mark.parametrize(("typed", "found"), [
    ("bach", "bach"), ("BACH", "bach"), ("  Mozart ", "mozart"), ("schumann robert", "schumann_robert"),
    ("Schumann_Clara", "schumann_clara"), ("clara", "schumann_clara"), ("ROBERT", "schumann_robert"),
    ("chop", "chopin"), ("schumann", None), ("o", None), ("liszt", None), ("", "unknown"), (None, "unknown"),
])  # fmt: skip
def test_find_composer_is_case_insensitive(typed, found):
    assert Vocab(composers=COMPOSERS).find_composer(typed) == found


def test_composer_ids():
    v = Vocab(composers=COMPOSERS)
    assert v.composers == ("unknown", "bach", "mozart", "schumann_robert", "schumann_clara", "chopin")
    assert v.composer_id("MOZART") == v.stoi["<composer:mozart>"]
    assert v.composer_id("Liszt") == v.composer_id(None) == v.stoi["<composer:unknown>"] == v.composer_offset
    assert all(v.is_composer(v.composer_id(c)) for c in v.composers)
    assert not v.is_composer(v.end_id) and not v.is_composer(len(v))
    assert v.special_ids == [0, 1, *range(v.composer_offset, v.base_size)]


def test_normalize_composer():
    assert normalize_composer("J.S. Bach") == "j.s._bach"
    assert normalize_composer("  ") == normalize_composer(None) == "unknown"
    assert composer_token("Clara Schumann") == "<composer:clara_schumann>"
