"""The ranking benchmark's definitions on hand-made scores and labels (no model involved)."""
from __future__ import annotations

import json

import pytest

from attack.bench.ranking import POSITIVE, TRUTH, auc, evaluate, precision_at, tpr_at_fpr
from store import CaptionRow, Store


def test_auc_counts_ties_one_half_and_tpr_respects_the_fpr_budget():
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1], [1]) == 0.5
    assert auc([2, 1], [1, 0]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    neg = list(range(100))
    assert tpr_at_fpr([200, 50], neg, 0.01) == 0.5  # one negative above 50 would already cost >1%
    assert tpr_at_fpr([200, 99], neg, 0.01) == 1.0  # 99 ties the top negative: 1% FPR exactly
    assert precision_at({1: 0.9, 2: 0.8, 3: 0.1}, {1, 3}, 2) == (0.5, 1)


def test_evaluate_on_hand_made_scores_and_labels(tmp_path):
    truth = json.loads(TRUTH.read_text())
    attack = truth["attack"]
    with Store.open(tmp_path / "s") as s:
        ids = s.add_captions([CaptionRow(a["caption"]) for a in attack])
        kind = dict(zip(ids, (a["kind"] for a in attack)))
        for k in ("dcs", "ecs", "wen"):
            run = s.start_run("score", "demo", {"score": k})
            # dcs and wen rank every positive first; ecs puts the textures on top
            vals = [(c, (2.0 if kind[c] in POSITIVE else 1.0) if k != "ecs" else (3.0 if kind[c] == "texture" else
                     2.0 if kind[c] in POSITIVE else 1.0)) for c in ids]
            s.add_scores(run, k, vals)
            s.finish_run(run, len(ids) if k != "ecs" else 4 * len(ids))
        gen = s.start_run("generate", "demo", {})
        lab = s.start_run("label", "", {})
        sha = s.put_image(__import__("numpy").zeros((4, 4, 3), "uint8"))
        exact = [c for c in ids if kind[c] == "exact"]
        texture = [c for c in ids if kind[c] == "texture"]
        template = [c for c in ids if kind[c] == "template"]
        plan = {exact[0]: ("MV", []), exact[1]: ("MV", ["suspect:background"]), texture[0]: ("MV", ["suspect:texture"]),
                texture[1]: ("MV", []), template[0]: ("TV", []), template[1]: ("MV", [])}
        for c, (label, flags) in plan.items():
            s.add_generation(c, gen, 0, 16, "heun-karras", sha)
            s.add_auto_label(c, lab, label, {}, flags)
        out, extra = evaluate(s, truth, prefilter=128)
    n_pos = sum(k in POSITIVE for k in kind.values())
    assert out["auc"]["dcs"] == 1.0 and out["auc"]["wen"] == 1.0 and out["auc"]["ecs"] < 1.0
    assert out["precision_at_planted"]["dcs"] == 1.0
    assert out["evals_per_verbatim"]["dcs"] == pytest.approx(len(ids) / n_pos, abs=0.01)
    # dcs_then_ecs: ECS reorders the DCS pre-filter (all positives and some ties): textures rank first
    assert out["auc"]["dcs_then_ecs"] <= out["auc"]["dcs"]
    assert out["evals_per_verbatim"]["dcs_then_ecs"] > out["evals_per_verbatim"]["dcs"]
    # every MV proposal counts: exact[0], exact[1] (right, one flagged), texture[0], texture[1], template[1] (wrong)
    assert out["label_precision"]["MV"] == pytest.approx(2 / 5, abs=1e-4)
    assert out["label_recall"]["MV"] == pytest.approx(2 / 12, abs=1e-4)
    assert out["label_precision"]["TV"] == 1.0 and out["label_recall"]["TV"] == pytest.approx(1 / 72, abs=1e-4)
    assert out["label_precision"]["RV"] is None
    # among unflagged MV only: exact[0] right; texture[1], template[1] wrong
    assert extra["label_precision_unflagged"]["MV"] == pytest.approx(1 / 3, abs=1e-4)
    # 8 textures: one labelled MV unflagged fails, the rest (flagged or never proposed) pass
    assert out["textures_flagged"] == pytest.approx(7 / 8)
    # two flagged labels: texture[0] (a planted texture: right), exact[1] (a real copy: wrong)
    assert out["flag_precision"] == 0.5
    assert set(out) == {"auc", "tpr_at_1pct_fpr", "precision_at_planted", "evals_per_verbatim", "label_precision",
                        "label_recall", "textures_flagged", "flag_precision"}
    assert all(set(out[k]) == {"dcs", "ecs", "wen", "dcs_then_ecs"} for k in
               ("auc", "tpr_at_1pct_fpr", "precision_at_planted", "evals_per_verbatim"))
