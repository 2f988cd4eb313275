"""Property-based fuzzing (hypothesis): nothing but a maia.errors.MaiaError may escape the MIDI reader or
the decoder, whatever bytes or tokens they are given.

- the reader gets real files (assets/prompts/*.mid, tests/midi_factory.py performances, tests/bad_midi.py
  oddities) mutated: bits flipped, bytes set to MIDI-significant values, truncated, bytes inserted or
  deleted, ranges and whole chunks duplicated, chunk lengths and header fields rewritten;
- whatever it reads must be a valid Piece that encodes and decodes back to itself;
- the decoder gets random id sequences (ids beyond the vocabulary too) and random token strings, with and
  without n-gram merges.

Profiles (tests/conftest.py): 200 examples per property by default; `--hypothesis-profile=long` for 5000.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from bad_midi import VALID, _running_status, note, simple
from helpers import assert_valid_piece
from hypothesis import event, example, given
from hypothesis import strategies as st
from midi_factory import performance

from maia.encoding import decode, decode_ids, encode_ids, read, read_midi_bytes
from maia.errors import MaiaError
from maia.vocab import Vocab

ROOT = Path(__file__).resolve().parent.parent
VOCAB = Vocab(composers=("bach", "mozart"))
SEEDS = [
    *(p.read_bytes() for p in sorted((ROOT / "assets" / "prompts").glob("*.mid"))),
    performance(1, tpq=96, fmt=0, n_tracks=1, n_chords=12).to_midi_bytes(),  # pedal, tempo map, drums
    performance(2, tpq=1000, fmt=1, n_tracks=2, n_chords=8).to_midi_bytes(),
    VALID,
    _running_status(),
]
assert len(SEEDS) >= 6  # the three shipped prompts are there
SIGNIFICANT = [0x00, 0x01, 0x7F, 0x80, 0x90, 0xB0, 0xF0, 0xF7, 0xFF, 0x2F, 0x51, 0x58]  # statuses, metas, edges


def chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each well-formed chunk: 8-byte header (4-byte type, 4-byte big-endian length) + body."""
    out, i = [], 0
    while i + 8 <= len(data):
        end = i + 8 + int.from_bytes(data[i + 4 : i + 8], "big")
        if end > len(data):
            break
        out.append((i, end))
        i = end
    return out


@st.composite
def mutated_midi(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "duplicate", "chunk", "length"]))
        if not data:
            data += draw(st.binary(max_size=32))
            continue
        i = draw(st.integers(min(4, len(data) - 1), len(data) - 1))  # past "MThd": a bad magic is refused at once
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from(SIGNIFICANT) | st.integers(0, 255))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=24))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 32))]
        elif op == "duplicate":  # a range of bytes repeated in place: running status, events, chunk tails
            j = draw(st.integers(i, min(len(data), i + 64)))
            data[j:j] = data[i:j] * draw(st.integers(1, 4))
        elif (found := chunks(bytes(data))) and op == "chunk":  # a whole chunk (MThd or MTrk) again
            a, b = draw(st.sampled_from(found))
            at = draw(st.sampled_from([a, b, len(data)]))
            data[at:at] = data[a:b]
        elif found:  # op == "length": a chunk's length field or a header field rewritten
            a, _ = draw(st.sampled_from(found))
            field = draw(st.sampled_from([a + 4, a + 8, a + 10, a + 12]))  # length; MThd: format, ntrks, division
            size = 4 if field == a + 4 else 2
            value = draw(st.sampled_from([0, 1, 2, 6, 0x7F, 0x8000, 0xFFFF, 2**31 - 1, 2**32 - 1])
                         | st.integers(0, 2 ** (8 * size) - 1))
            data[field : field + size] = (value % 2 ** (8 * size)).to_bytes(size, "big")
    return bytes(data)


@given(mutated_midi())
@example(simple(b"".join(note(60 + i, gap=0x0FFFFFFF) for i in range(9))))  # int32 ticks wrap around (was a crash)
def test_reader_raises_only_maia_errors(data):
    try:
        piece = read_midi_bytes(data, name="fuzz.mid")
    except MaiaError as e:
        assert str(e).startswith("fuzz.mid: ") and "\n" not in str(e)
        event("refused: " + re.sub(r"\d+", "N", str(e)[10:].split(" (")[0])[:40])  # --hypothesis-show-statistics: what was hit
        return
    event("read as music")
    assert_valid_piece(piece)
    assert 10.0 <= piece.tempo_qpm <= 1000.0
    # Whatever reads is music maia can work with: it encodes, and decodes back to the same notes.
    ids = encode_ids(piece, VOCAB, "bach")
    back = decode_ids(ids, VOCAB)
    np.testing.assert_array_equal(back.notes[:, :3], piece.notes[:, :3])


@given(mutated_midi(), st.sampled_from([".mid", ".midi", ".kar", ".txt", ""]))
def test_read_of_a_file_raises_only_maia_errors(data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            assert_valid_piece(read(path))
        except MaiaError as e:
            assert str(e).startswith(f"{path.name}: ") and "\n" not in str(e)


def _merged_vocab() -> Vocab:
    """VOCAB plus three n-gram merges, one of them nested: decoding must expand them first."""
    ids = VOCAB.stoi
    base = len(VOCAB)
    merges = ((ids["p60"], ids["wait3"]), (base, ids["endp60"]), (ids["v5"], ids["p64"]))
    return Vocab(VOCAB.config, VOCAB.composers, merges)


MERGED = _merged_vocab()


@given(st.sampled_from([VOCAB, MERGED]), st.data())
def test_decode_ids_never_raises(vocab, data):
    n = len(vocab)
    ids = data.draw(st.lists(st.integers(0, n - 1) | st.integers(-5, n + 50), max_size=600))
    piece = decode_ids(ids, vocab)
    assert_valid_piece(piece, vocab.config)
    # Decoding is a projection: its result encodes and decodes to itself.
    np.testing.assert_array_equal(decode_ids(encode_ids(piece, vocab), vocab).notes, piece.notes)


@given(st.lists(st.sampled_from(MERGED.itos) | st.text(max_size=12), max_size=300))
def test_decode_tokens_never_raises(tokens):
    piece = decode(tokens, MERGED)
    assert_valid_piece(piece, MERGED.config)
