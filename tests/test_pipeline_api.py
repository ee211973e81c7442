"""The one pipeline from Python: the documented notebook example runs as written, the command
line's `run` goes through it, and it refuses what it cannot do before writing anything."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attack import cli
from attack.demo.build import attack_captions
from attack.errors import ScoreInputError
from attack.images.embed import EmbedderError
from attack.ingest import ingest
from attack.models import load_model
from attack.pipeline import STAGES, Pipeline, PipelineParams
from attack.stages.generate import GenerateParams
from attack.stages.retrieve import RetrieveParams
from attack.stages.rules import LabelInputError
from store import Store

REPO = Path(__file__).resolve().parent.parent


def notebook_example() -> str:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "expected a python example in docs/architecture.md"
    return blocks[0]


def small_inputs(folder: Path, n_captions: int = 2) -> list[str]:
    captions = attack_captions()[:n_captions]
    (folder / "captions.txt").write_text("\n".join(captions) + "\n", encoding="utf-8")
    images = folder / "training_images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f"{i}.png")
    return captions


def test_the_documented_notebook_example_runs_as_written(tmp_path, monkeypatch):
    captions = small_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(notebook_example(), "docs/architecture.md", "exec"), scope)
    lines = scope["report"].lines
    assert [line.split()[0].rstrip(":") for line in lines] == ["score", "generate", "retrieve", "label"], lines
    with Store.open(tmp_path / "data" / "mine", create=False) as store:
        labelled = {s.caption_id for s in store.auto_label_states()}
        assert labelled == {store.caption_id(t) for t in captions}


def test_the_command_line_run_goes_through_the_pipeline(tmp_path, monkeypatch):
    small_inputs(tmp_path)
    calls = []
    real_run = Pipeline.run

    def spy(self, captions=None, stages=STAGES, **kw):
        calls.append((tuple(stages), kw))
        return real_run(self, captions, stages, **kw)

    monkeypatch.setattr(Pipeline, "run", spy)
    store = tmp_path / "s"
    assert cli.main(["ingest", "--store", str(store), "--images", str(tmp_path / "training_images")]) == 0
    assert cli.main(["run", "--store", str(store), "--model", "demo", "--device", "cpu", "--captions",
                     str(tmp_path / "captions.txt"), "--top-k", "1", "--seeds", "1", "--steps", "2"]) == 0
    assert calls == [(STAGES, {"offset": 0, "limit": None})]


def test_part_of_the_pipeline_and_a_resumed_one(tmp_path):
    captions = small_inputs(tmp_path)
    model = load_model("demo", "cpu")
    params = PipelineParams(scores=("dcs",), generate=GenerateParams(top_k=1, seeds=(0,), steps=2))
    with Store.open(tmp_path / "s") as store:
        ingest(store, tmp_path / "captions.txt", images=tmp_path / "training_images")
        first = Pipeline(store, model, params).run(captions, stages=("score",))
        assert [r.computed for r in first.scores] == [2] and first.generate is None
        again = Pipeline(store, model, params).run(captions)
        assert again.scores[0].skipped == 2 and again.scores[0].computed == 0
        assert again.generate.computed == 1 and again.label is not None


def test_the_pipeline_refuses_before_any_write(tmp_path):
    small_inputs(tmp_path)
    model = load_model("demo", "cpu")
    with Store.open(tmp_path / "s") as store:
        ingest(store, tmp_path / "captions.txt")
        before = store.info()
        with pytest.raises(ScoreInputError, match="expected stages among score, fuse, generate"):
            Pipeline(store, model).run(stages=("score", "embed"))
        with pytest.raises(ScoreInputError, match="--by: expected one of the scores this run computes"):
            Pipeline(store, model, PipelineParams(scores=("dcs",), by="ecs")).run()
        with pytest.raises(ScoreInputError, match="expected at least one item at offset 5"):
            Pipeline(store, model).run(offset=5)
        with pytest.raises(LabelInputError, match="verbatim"):
            Pipeline(store, model, PipelineParams(preset="verbatimm")).run()
        with pytest.raises(EmbedderError, match="pixel"):
            Pipeline(store, model, PipelineParams(retrieve=RetrieveParams(embedder="pixl"))).run()
        assert store.info() == before
