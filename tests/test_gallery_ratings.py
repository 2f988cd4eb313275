"""maia.gallery.ratings: Bradley–Terry with ties as half wins, and its Fisher intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from maia.gallery.ratings import ELO, fit, leaderboard


def test_three_wins_in_four_give_odds_of_three():
    names, theta, _ = fit([("a", "b", 1.0)] * 3 + [("a", "b", 0.0)], prior=1e-9)
    assert names == ["a", "b"] and theta[0] - theta[1] == pytest.approx(math.log(3), abs=1e-4)
    board = leaderboard([("a", "b", 1.0)] * 3 + [("a", "b", 0.0)], prior=1e-9)
    assert board[0].rating - board[1].rating == pytest.approx(ELO * math.log(3), abs=0.2)
    assert (board[0].games, board[0].score) == (4, 0.75)


def test_ties_count_half_and_only_ties_rate_equal():
    board = leaderboard([("a", "b", 0.5)] * 10)
    assert board[0].rating == board[1].rating == 0.0
    # one win and two ties: 2 of 3, the same odds as two wins in three
    with_ties = fit([("a", "b", 1.0), ("a", "b", 0.5), ("a", "b", 0.5)], prior=1e-9)[1]
    with_wins = fit([("a", "b", 1.0), ("a", "b", 1.0), ("a", "b", 0.0)], prior=1e-9)[1]
    assert with_ties[0] - with_ties[1] == pytest.approx(with_wins[0] - with_wins[1], abs=1e-4)


def test_an_unbeaten_variant_has_a_finite_rating_and_a_wide_interval():
    board = leaderboard([("a", "b", 1.0)])
    assert all(math.isfinite(x) for r in board for x in (r.rating, r.low, r.high))
    assert board[0].variant == "a" and board[0].low < 0 < board[0].rating < board[0].high


def test_recovers_known_strengths_within_its_intervals():
    rng = np.random.default_rng(0)
    strength = {"x": 0.0, "y": 0.5, "z": 1.0}
    games = []
    for _ in range(3000):
        a, b = rng.choice(list(strength), 2, replace=False)
        s = rng.random()
        p = 1 / (1 + math.exp(-(strength[a] - strength[b])))
        games.append((str(a), str(b), 1.0 if s < p * 0.9 else 0.5 if s < p * 0.9 + 0.1 else 0.0))
    board = {r.variant: r for r in leaderboard(games)}
    assert [r.variant for r in leaderboard(games)] == ["z", "y", "x"]
    true = {v: ELO * (s - np.mean(list(strength.values()))) for v, s in strength.items()}
    for r in board.values():
        assert r.high - r.low < 40  # 2,000 votes each: a narrow interval
    # the ratings are centred; the differences are what the votes measure
    assert board["z"].rating - board["x"].rating == pytest.approx(true["z"] - true["x"], abs=40)


def test_more_votes_narrow_the_interval():
    few = leaderboard([("a", "b", 1.0), ("a", "b", 0.0)] * 5)
    many = leaderboard([("a", "b", 1.0), ("a", "b", 0.0)] * 500)
    assert (many[0].high - many[0].low) < (few[0].high - few[0].low) / 5
    assert leaderboard([]) == []
