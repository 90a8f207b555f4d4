"""Which evaluators' ratings count: attention checks, and ITU-R BT.500's observer screening (the beta_2 test).

BT.500 (Annex 2, "screening of the observers"), per presentation j (here: one test pair) with N_j ratings u_ij:
mean u_j, standard deviation S_j (N_j - 1 in the denominator) and kurtosis beta_2j = m_4 / m_2^2, with
m_x = sum_i (u_ij - u_j)^x / N_j. The distribution counts as normal when 2 <= beta_2j <= 4; an observer's rating
is then high when u_ij >= u_j + 2 S_j and low when u_ij <= u_j - 2 S_j, otherwise the bounds are sqrt(20) S_j.
With P_i high and Q_i low ratings over the J_i presentations observer i rated, the observer is rejected when
(P_i + Q_i) / J_i > 0.05 and |P_i - Q_i| / (P_i + Q_i) < 0.3: often far from the others, in both directions.

Where the recommendation assumes every observer rates every presentation, a study gives each evaluator a few sets:
a pair rated fewer than ``min_ratings`` times has no one to compare with and is left out of P, Q and J; on a pair
all its raters agree on (S_j = 0) nobody deviates (it still counts in J). The test is run once, not repeated.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

from advdf.errors import ConfigError


@dataclass(frozen=True)
class Screening:
    """How evaluators are screened.

    Args:
        attention_max_rating: an attention check (an obviously degraded pair) is passed by a rating at most this.
        max_attention_failures: evaluators who fail more attention checks than this are rejected.
        bt500: apply the BT.500 beta_2 observer screening.
        min_ratings: ratings a pair needs to enter the BT.500 test.
    """

    attention_max_rating: int = 2
    max_attention_failures: int = 0
    bt500: bool = True
    min_ratings: int = 2

    def __post_init__(self) -> None:
        if self.attention_max_rating not in (1, 2, 3, 4):
            raise ConfigError(f"screening.attention_max_rating must be 1-4, got {self.attention_max_rating!r}")
        if self.max_attention_failures < 0 or self.min_ratings < 2:
            raise ConfigError("screening.max_attention_failures must be >= 0 and screening.min_ratings >= 2")


def attention_failures(ratings: list[dict], max_rating: int) -> dict[str, tuple[int, int]]:
    """{evaluator: (attention checks rated, failed)} from ratings of condition ``attention``."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in ratings:
        if r["condition"] == "attention":
            out[r["evaluator"]][0] += 1
            out[r["evaluator"]][1] += int(r["rating"] > max_rating)
    return {k: (v[0], v[1]) for k, v in out.items()}


def presentation_stats(scores: list[float]) -> tuple[float, float, float | None]:
    """(mean, sample standard deviation, kurtosis beta_2; None when m_2 is 0) of one presentation's ratings."""
    n = len(scores)
    mean = sum(scores) / n
    dev = [s - mean for s in scores]
    sd = math.sqrt(sum(d * d for d in dev) / (n - 1))
    m2, m4 = sum(d**2 for d in dev) / n, sum(d**4 for d in dev) / n
    return mean, sd, (m4 / m2**2 if m2 > 0 else None)


def bt500_screening(ratings: list[dict], min_ratings: int = 2) -> dict[str, dict]:
    """{evaluator: {"P", "Q", "J", "rejected"}} by the beta_2 test over the test pairs' ratings (the attention
    checks excluded); see the module docstring."""
    by_pair: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for r in ratings:
        if r["condition"] != "attention":
            by_pair[r["pair"]].append((r["evaluator"], float(r["rating"])))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # P, Q, J
    for scored in by_pair.values():
        if len(scored) < min_ratings:
            continue
        mean, sd, beta2 = presentation_stats([s for _, s in scored])
        bound = (2.0 if beta2 is not None and 2 <= beta2 <= 4 else math.sqrt(20)) * sd
        for evaluator, s in scored:
            c = counts[evaluator]
            c[2] += 1
            if sd > 0:
                c[0] += int(s >= mean + bound)
                c[1] += int(s <= mean - bound)
    out = {}
    for evaluator, (p, q, j) in counts.items():
        far = p + q
        out[evaluator] = {"P": p, "Q": q, "J": j,
                          "rejected": bool(far and far / j > 0.05 and abs(p - q) / far < 0.3)}
    return out


def screen(ratings: list[dict], screening: Screening) -> list[dict]:
    """One row per evaluator: ratings, attention checks and failures, BT.500's P, Q, J, and ``kept`` with the
    reason it is not (``attention`` / ``bt500``). The BT.500 test runs on the evaluators who passed the attention
    checks: a careless evaluator would otherwise move every pair's mean and spread."""
    n_ratings = Counter(r["evaluator"] for r in ratings)
    attention = attention_failures(ratings, screening.attention_max_rating)
    careless = {e for e, (_, failed) in attention.items() if failed > screening.max_attention_failures}
    bt500 = bt500_screening([r for r in ratings if r["evaluator"] not in careless],
                            screening.min_ratings) if screening.bt500 else {}
    rows = []
    for e in n_ratings:
        checks, failed = attention.get(e, (0, 0))
        b = bt500.get(e, {"P": 0, "Q": 0, "J": 0, "rejected": False})
        reason = "attention" if e in careless else ("bt500" if b["rejected"] else None)
        rows.append({"evaluator": e, "ratings": n_ratings[e], "attention_checks": checks, "attention_failed": failed,
                     "P": b["P"], "Q": b["Q"], "J": b["J"], "kept": reason is None, "rejected_for": reason})
    return rows
