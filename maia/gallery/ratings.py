"""Ratings from the listening room's votes: Bradley–Terry, ties as half wins, with confidence intervals.

    board = leaderboard(gallery.games())   # [Rating(variant, rating, low, high, games, score), ...] best first

Bradley–Terry gives each variant a strength ``θ`` so that A beats B with probability ``σ(θ_A − θ_B)``;
a vote of "the same" counts half a win to each side. The fit maximises the likelihood with Hunter's (2004)
MM updates. Each variant also plays ``prior`` virtual drawn games against a fixed reference of strength 0,
which keeps a variant that has only won (or only lost) at a finite rating and weighs little once it has a
few dozen votes. The 95% intervals come from the Fisher information (the likelihood's curvature at the
fit): ``θ ± 1.96 · se``. Ratings are shown on the Elo scale (400 points: 10 to 1 odds), centred on the
mean variant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

ELO = 400.0 / math.log(10.0)  # θ in natural log-odds -> Elo points
Z95 = 1.959964


@dataclass
class Rating:
    variant: str
    rating: float  # Elo points, the mean variant at 0
    low: float  # 95% confidence interval
    high: float
    games: int  # votes that include this variant
    score: float  # (wins + ties / 2) / games

    def as_dict(self) -> dict:
        return asdict(self)


def fit(games: Iterable[tuple[str, str, float]], prior: float = 1.0, iterations: int = 10_000,
        tol: float = 1e-10) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(variants, θ, covariance of θ) from games (A, B, A's score: 1, 0.5 or 0); θ relative to the reference."""
    games = list(games)
    names = sorted({g[0] for g in games} | {g[1] for g in games})
    index = {n: i for i, n in enumerate(names)}
    n = len(names)
    wins = np.full(n, prior / 2.0)  # W_i: the prior's drawn games against the reference count half
    pairs = np.zeros((n, n))  # n_ij: games between i and j
    for a, b, s in games:
        i, j = index[a], index[b]
        if i == j:
            continue  # two pieces of one variant tell nothing about it
        wins[i] += s
        wins[j] += 1.0 - s
        pairs[i, j] += 1
        pairs[j, i] += 1
    p = np.ones(n)
    for _ in range(iterations):
        # MM update: p_i = W_i / Σ_j n_ij / (p_i + p_j), the reference (strength 1) among the j's
        denom = (pairs / (p[:, None] + p[None, :])).sum(axis=1) + prior / (p + 1.0)
        new = wins / np.maximum(denom, 1e-300)
        new = np.maximum(new, 1e-300)
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    theta = np.log(p)
    # Fisher information: -∂²logL/∂θ², from every game's q(1-q), q = σ(θ_i - θ_j)
    q = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    off = pairs * q * (1.0 - q)
    info = -off
    q0 = 1.0 / (1.0 + np.exp(-theta))
    info[np.diag_indices(n)] = off.sum(axis=1) + prior * q0 * (1.0 - q0)
    cov = np.linalg.pinv(info) if n else np.zeros((0, 0))
    return names, theta, cov


def leaderboard(games: Iterable[tuple[str, str, float]], prior: float = 1.0) -> list[Rating]:
    """The variants, best first, with Elo-scale ratings centred on their mean and 95% intervals."""
    games = list(games)
    if not games:
        return []
    names, theta, cov = fit(games, prior)
    n = len(names)
    centre = np.eye(n) - np.full((n, n), 1.0 / n)  # θ - mean(θ), and its covariance C Σ Cᵀ
    centred = centre @ theta
    se = np.sqrt(np.maximum(np.diag(centre @ cov @ centre.T), 0.0))
    played = {v: [0, 0.0] for v in names}
    for a, b, s in games:
        if a != b:
            played[a][0] += 1
            played[a][1] += s
            played[b][0] += 1
            played[b][1] += 1.0 - s
    board = [Rating(str(v), round(float(ELO * centred[i]), 1), round(float(ELO * (centred[i] - Z95 * se[i])), 1),
                    round(float(ELO * (centred[i] + Z95 * se[i])), 1), played[v][0],
                    round(played[v][1] / played[v][0], 3) if played[v][0] else 0.0) for i, v in enumerate(names)]
    return sorted(board, key=lambda r: (-r.rating, r.variant))
