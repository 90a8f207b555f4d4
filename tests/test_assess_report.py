"""The DCR report on synthetic ratings tables, against numbers worked out by hand: MOS and Student-t intervals,
attention checks, BT.500's beta_2 observer screening, seed 002's Table 5 layout."""

from __future__ import annotations

import math

import pytest

from advdf.assess.report import mos_interval, mos_report, table5_rows
from advdf.assess.screening import Screening, bt500_screening, presentation_stats, screen

# Student-t quantiles t(0.975, df) from a printed table.
T975 = {2: 4.302652729911275, 5: 2.5705818366147395}

CONDITIONS = [{"name": "IAP", "label": "IAP", "kind": "attack", "attack": "iap_cls"},
              {"name": "reference", "label": "Baseline", "kind": "reference"}]
PAIRS = {"p1": {"condition": "IAP", "psnr": 30.0, "ssim": 0.9}, "p2": {"condition": "IAP", "psnr": 40.0, "ssim": 0.8},
         "r1": {"condition": "reference", "psnr": None, "ssim": 1.0},
         "a1": {"condition": "attention", "psnr": 12.0, "ssim": 0.1}}


def _rows(table: dict[int, dict[str, int]]) -> list[dict]:
    return [{"evaluator": e, "pair": p, "condition": PAIRS[p]["condition"], "rating": r}
            for e, scores in table.items() for p, r in scores.items()]


# Four evaluators; evaluator 3 rates the obviously degraded attention pair 4 (> 2): rejected.
TABLE = _rows({1: {"p1": 4, "p2": 3, "r1": 5, "a1": 1}, 2: {"p1": 3, "p2": 2, "r1": 4, "a1": 2},
               3: {"p1": 5, "p2": 4, "r1": 5, "a1": 4}, 4: {"p1": 4, "p2": 4, "r1": 5, "a1": 1}})


def test_mos_and_intervals_match_a_hand_computation():
    result = mos_report(TABLE, CONDITIONS, PAIRS, Screening())
    iap, ref = result["conditions"]
    # IAP, evaluators 1, 2, 4: 4, 3, 3, 2, 4, 4 -> mean 20/6; squared deviations sum to 10/3, s^2 = 2/3.
    assert iap["n"] == 6 and iap["evaluators"] == 3
    assert iap["mos"] == pytest.approx(20 / 6)
    assert iap["sd"] == pytest.approx(math.sqrt(2 / 3))
    half = T975[5] * math.sqrt(2 / 3) / math.sqrt(6)  # = 2.5706 / 3 = 0.85686
    assert (iap["lo"], iap["hi"]) == pytest.approx((20 / 6 - half, 20 / 6 + half))
    assert (iap["lo"], iap["hi"]) == pytest.approx((2.47647, 4.19019), abs=1e-5)
    # Baseline: 5, 4, 5 -> 14/3, s = sqrt(1/3); 14/3 + 4.3027 / 3 = 6.10 is cut to the scale's 5.
    assert ref["mos"] == pytest.approx(14 / 3) and ref["sd"] == pytest.approx(math.sqrt(1 / 3))
    assert ref["lo"] == pytest.approx(14 / 3 - T975[2] / 3) and ref["hi"] == 5.0
    assert ref["paper"] == 4.49 and iap["paper"] is None  # seed 002's Table 5 baseline; its other cells are lost
    # objective scores: the means over the condition's pairs; the reference's images are identical
    assert iap["psnr"] == pytest.approx(35.0) and iap["ssim"] == pytest.approx(0.85)
    assert math.isinf(ref["psnr"]) and ref["ssim"] == 1.0
    assert result["ratings_total"] == 16 and result["ratings_kept"] == 9  # 3 kept x 3 test pairs


def test_attention_checks_reject_careless_evaluators():
    rows = {e["evaluator"]: e for e in screen(TABLE, Screening())}
    assert [e for e, r in rows.items() if not r["kept"]] == [3]
    assert rows[3]["rejected_for"] == "attention" and rows[3]["attention_failed"] == 1
    assert rows[2]["attention_failed"] == 0  # a 2 passes (attention_max_rating 2)
    lenient = {e["evaluator"]: e["kept"] for e in screen(TABLE, Screening(max_attention_failures=1))}
    assert all(lenient.values())
    strict = {e["evaluator"]: e["kept"] for e in screen(TABLE, Screening(attention_max_rating=1))}
    assert strict == {1: True, 2: False, 3: False, 4: True}


def test_presentation_stats_by_hand():
    # 3,3,3,3,3,4,4,4,4,5: mean 3.6; sum d^2 = 5(.36) + 4(.16) + 1.96 = 4.4; sum d^4 = 5(.1296) + 4(.0256) + 3.8416
    mean, sd, beta2 = presentation_stats([3] * 5 + [4] * 4 + [5])
    assert mean == pytest.approx(3.6)
    assert sd == pytest.approx(math.sqrt(4.4 / 9))
    assert beta2 == pytest.approx((4.592 / 10) / (4.4 / 10) ** 2)  # 2.372: normal (2 <= beta_2 <= 4)
    assert presentation_stats([4, 4, 4])[2] is None  # no spread: no kurtosis


def _bt500_table(extreme: dict[str, int]) -> list[dict]:
    """Nine consistent raters (0-8) and rater 9 on four pairs: on an "h" pair the nine give 3,3,3,3,3,4,4,4,4,
    on an "l" pair 3,3,3,3,3,2,2,2,2; rater 9 gives ``extreme[pair]``."""
    rows = []
    for pair, rating in extreme.items():
        others = [3] * 5 + ([4] * 4 if pair.startswith("h") else [2] * 4)
        rows += [{"evaluator": e, "pair": pair, "condition": "X", "rating": r} for e, r in enumerate(others)]
        rows.append({"evaluator": 9, "pair": pair, "condition": "X", "rating": rating})
    return rows


def test_bt500_rejects_an_evaluator_far_off_in_both_directions():
    # On "h" pairs (with rater 9's 5): mean 3.6, s = 0.6992, beta_2 = 2.37, so 5 >= 3.6 + 2s = 4.998 is high;
    # mirrored on "l" pairs (with 1): 1 <= 2.4 - 2s is low. Rater 9: P = 2, Q = 2 of J = 4 -> (P+Q)/J = 1 > 0.05 and
    # |P-Q|/(P+Q) = 0 < 0.3: rejected. The nine others are never beyond 2s: P = Q = 0.
    out = bt500_screening(_bt500_table({"h1": 5, "h2": 5, "l1": 1, "l2": 1}))
    assert out[9] == {"P": 2, "Q": 2, "J": 4, "rejected": True}
    assert all(out[e] == {"P": 0, "Q": 0, "J": 4, "rejected": False} for e in range(9))
    rows = {e["evaluator"]: e for e in screen(_bt500_table({"h1": 5, "h2": 5, "l1": 1, "l2": 1}), Screening())}
    assert rows[9]["rejected_for"] == "bt500" and sum(r["kept"] for r in rows.values()) == 9


def test_bt500_keeps_an_evaluator_off_in_one_direction_only():
    # Always high (P = 4, Q = 0): |P-Q|/(P+Q) = 1 >= 0.3, a consistent bias, not an unreliable observer.
    out = bt500_screening(_bt500_table({"h1": 5, "h2": 5, "h3": 5, "h4": 5}))
    assert out[9] == {"P": 4, "Q": 0, "J": 4, "rejected": False}


def test_bt500_leaves_out_pairs_rated_once_and_agreed_pairs():
    rows = [{"evaluator": 1, "pair": "a", "condition": "X", "rating": 5},  # rated once: nobody to compare with
            *({"evaluator": e, "pair": "b", "condition": "X", "rating": 4} for e in (1, 2, 3))]  # all agree
    out = bt500_screening(rows)
    assert out[1] == {"P": 0, "Q": 0, "J": 1, "rejected": False}  # only "b" counts, and nobody deviates there


def test_interval_edge_cases():
    assert mos_interval([]) == {"n": 0, "mos": None, "sd": None, "lo": None, "hi": None}
    assert mos_interval([3]) == {"n": 1, "mos": 3.0, "sd": None, "lo": None, "hi": None}
    one = mos_interval([1, 1, 2])  # the low end is cut to 1 as well
    assert one["lo"] == 1.0 and one["hi"] == pytest.approx(4 / 3 + T975[2] * math.sqrt(1 / 3) / math.sqrt(3))


def test_table5_layout_puts_ours_beside_the_papers_rows():
    result = mos_report(TABLE, CONDITIONS, PAIRS, Screening())
    extra = {**result["conditions"][0], "condition": "PGD", "label": "PGD", "attack": "pgd"}
    rows = table5_rows([*result["conditions"], extra])
    assert [r[0] for r in rows] == ["IAP", "UAP", "URN", "Baseline", "PGD"]  # the paper's four, then ours
    assert rows[0][1] == "3.33 [2.48, 4.19]" and rows[0][-1] == "—"
    assert rows[1][1:] == ["—", "0", "0", "—", "—", "—"]  # no UAP set in this study
    assert rows[3][1] == "4.67 [3.23, 5.00]" and rows[3][4] == "∞" and rows[3][-1] == "4.49"
