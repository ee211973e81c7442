"""The demo store end to end on a reduced caption list: every stage writes, a rerun reuses it all."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attack.demo.build import DemoBuildError, DemoParams, attack_captions, build_demo_store
from attack.stages.generate import GenerateParams
from attack.images.metrics import rmse, to_compare
from store import Store

TRUTH = json.loads((Path(__file__).resolve().parent.parent / "attack" / "demo" / "truth.json").read_text())


def _pick() -> list[str]:
    by_kind: dict[str, list[str]] = {}
    for a in TRUTH["attack"]:
        by_kind.setdefault(a["kind"], []).append(a["caption"])
    n = {"exact": 2, "template": 2, "retrieval": 1, "texture": 1, "unique": 2}
    return [c for k, m in n.items() for c in by_kind[k][:m]]


def test_build_demo_store_on_a_few_captions_then_again(tmp_path):
    caps = _pick()
    assert set(caps) <= set(attack_captions())
    params = DemoParams(generate=GenerateParams(top_k=4, seeds=(0, 1), steps=3, guidance=7.5), batch_size=8)
    events: list[tuple[str, int, int]] = []
    out = build_demo_store(tmp_path / "demo", progress=lambda s, d, t: events.append((s, d, t)), captions=caps,
                           params=params)
    assert out["captions"] == len(caps) and out["ingested"] is True
    assert {s for s, _, _ in events} >= {"ingest", "dcs", "ecs", "wen", "anisotropy", "generate", "index", "retrieve",
                                         "label"}
    assert out["generate"]["computed"] == 8 and out["retrieve"]["neighbours"] == 80
    assert out["labels"]["labelled"] == 4 and sum(out["labels"]["counts"].values()) == 4
    with Store.open(tmp_path / "demo") as s:
        ids = [s.caption_id(c) for c in caps]
        for cid in ids:
            assert set(s.scores_for(cid)) == {"dcs", "ecs", "wen", "anisotropy", "dcs+anisotropy"}
        with s.snapshot() as conn:
            gen_caps = {r[0] for r in conn.execute("SELECT DISTINCT caption_id FROM generations")}
            run = conn.execute("SELECT params FROM runs WHERE stage = 'generate'").fetchone()
        assert len(gen_caps) == 4 and gen_caps <= set(ids)
        gp = json.loads(run[0])
        assert (gp["steps"], gp["guidance"], gp["sampler"]) == (3, 7.5, "heun-karras") and "model_fingerprint" in gp
        for cid in gen_caps:
            (al,) = s.auto_labels(cid)
            assert al.label in ("TV", "MV", "RV", "N") and {"tv", "mv", "rv"} <= set(al.distances)
            # the stored MV distance is the RMSE of a stored generation to the caption's own image
            gens = {g.id: g for g in s.generations(cid)}
            own = {t.id: t for t in s.training_images_for(cid)}
            if al.distances["mv"] is not None:
                g = gens[al.distances["mv_generation_id"]]
                t = own[al.distances["mv_train_image_id"]]
                a = to_compare(np.asarray(s.load_image(g.image_sha)))
                b = to_compare(np.asarray(s.load_image(t.sha256)))
                assert al.distances["mv"] == pytest.approx(float(rmse(a, b)[0]), abs=1e-5)
            for g in gens.values():
                ns = s.neighbours(g.id)
                assert [n.rank for n in ns] == list(range(10)) and all(n.rmse is not None for n in ns)
        n_rows = s.conn.execute("SELECT (SELECT count(*) FROM neighbours), (SELECT count(*) FROM auto_labels), "
                                "(SELECT count(*) FROM masks), (SELECT count(*) FROM generations)").fetchone()
    again = build_demo_store(tmp_path / "demo", captions=caps, params=params)
    assert again["ingested"] is False
    assert all(v["computed"] == 0 for v in again["scores"].values())
    assert again["generate"]["computed"] == 0 and again["retrieve"]["computed"] == 0
    assert again["labels"]["labelled"] == 0
    with Store.open(tmp_path / "demo") as s:
        assert s.conn.execute("SELECT (SELECT count(*) FROM neighbours), (SELECT count(*) FROM auto_labels), "
                              "(SELECT count(*) FROM masks), (SELECT count(*) FROM generations)").fetchone() == n_rows


def test_captions_outside_the_demo_list_fail_before_the_store_is_created(tmp_path):
    with pytest.raises(DemoBuildError, match="expected captions of the demo attack list .*got 1 other captions, "
                                             "e.g. 'a caption nobody planted'"):
        build_demo_store(tmp_path / "demo", captions=[attack_captions()[0], "a caption nobody planted"])
    with pytest.raises(DemoBuildError, match="got none"):
        build_demo_store(tmp_path / "demo", captions=[])
    assert not (tmp_path / "demo").exists()
