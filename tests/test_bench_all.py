"""`python -m attack bench all`: each bench in a child, its JSON and the machine written to
docs/benchmarks.md, sections rerun one at a time without losing the others."""
from __future__ import annotations

import json

import pytest

from attack.bench import all as bench_all
from attack.bench.all import Bench

FAKE = ("tests.assets.fake_bench",)


@pytest.fixture
def fake_benches(monkeypatch):
    benches = (Bench("one", "the first fake", FAKE, quick=("--quick-arg",), full=("--full-arg",)),
               Bench("two", "the second fake", (*FAKE, "--no-json", "--exit", "3")))
    monkeypatch.setattr(bench_all, "BENCHES", benches)
    monkeypatch.setattr(bench_all, "NAMES", tuple(b.name for b in benches))
    monkeypatch.setattr(bench_all, "machine", lambda: {"cores": 2, "torch": "x", "torch_threads": 1, "gpu": None,
                                                       "python": "3", "platform": "test"})
    return benches


def test_every_section_holds_its_json_command_commit_machine_and_load(tmp_path, fake_benches, capsys):
    out = tmp_path / "benchmarks.md"
    assert bench_all.main(["--quick", "--out", str(out)]) == 1          # the second bench exits 3
    text = out.read_text()
    one = text.split("<!-- bench:one -->")[1].split("<!-- /bench:one -->")[0]
    assert '"figure": 1.5' in one and "--quick-arg" in one and "--full-arg" not in one
    assert "command: `python -m tests.assets.fake_bench --quick-arg`" in one
    assert f"commit {bench_all.commit()}" in one and "2 cores" in one and "GPU: none" in one
    assert "load average (1 min)" in one and "of the cores while it ran" in one
    two = text.split("<!-- bench:two -->")[1].split("<!-- /bench:two -->")[0]
    assert "exit 3" in two and "No JSON line was printed" in two and "warming up" in two
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["one"]["exit"] == 0 and summary["two"]["exit"] == 3


def test_only_reruns_one_section_and_keeps_the_others(tmp_path, fake_benches):
    out = tmp_path / "benchmarks.md"
    bench_all.main(["--out", str(out)])
    before = out.read_text()
    assert "--full-arg" in before
    assert bench_all.main(["--only", "one", "--quick", "--out", str(out)]) == 0
    after = out.read_text()
    assert "--quick-arg" in after and "--full-arg" not in after
    assert before.split("<!-- bench:two -->")[1] == after.split("<!-- bench:two -->")[1]


def test_an_unknown_section_is_refused(tmp_path, fake_benches, capsys):
    with pytest.raises(SystemExit) as info:
        bench_all.main(["--only", "nope", "--out", str(tmp_path / "b.md")])
    assert info.value.code == 2 and "expected sections among one, two, got nope" in capsys.readouterr().err
    assert not (tmp_path / "b.md").exists()


def test_the_real_list_names_every_registered_bench():
    from attack.cli.commands import BENCHES

    assert {b.name for b in bench_all.BENCHES} >= set(BENCHES) - {"all"}


def test_the_detectors_section_gets_a_table_of_every_entry():
    result = {"scores": {"dcs": {"auc": 0.95712, "tpr_at_1pct_fpr": 0.8627, "tpr_at_1pct_fpr_without_textures": 0.9608,
                                 "evals_per_caption": 0.516, "captions_per_s": 196.04}}}
    rows = bench_all.detectors_table(result)
    assert rows[2] == "| `dcs` | 0.9571 | 0.8627 | 0.9608 | 0.52 | 196.0 |"


def test_idle_is_judged_by_what_other_processes_used():
    cores = bench_all.os.cpu_count()
    assert bench_all.other_share(busy_s=10.0, child_s=10.0, wall_s=5.0) == 0.0
    assert bench_all.other_share(busy_s=10.0 + 2.5 * cores, child_s=10.0, wall_s=5.0) == 0.5
    assert bench_all.other_share(busy_s=None, child_s=1.0, wall_s=1.0) is None
    assert bench_all.cpu_busy_s() is None or bench_all.cpu_busy_s() > 0


def test_the_throughput_section_gets_a_cost_table_with_counted_unet_calls():
    rows = bench_all.cost_table({"model": "demo", "device": "cpu", "dtype": "float32", "dcs_batched_per_s": 250.0,
                                 "ecs_batched_per_s": 44.0, "evals_per_caption": {"dcs": 0.5078, "ecs": 2.0625}})
    text = "\n".join(rows)
    assert "| score DCS (batched) | 0.51 | 250.0 |" in text and "| score ECS" in text and "2.06 | 44.0 |" in text
    assert "| 124 |" in text          # 4 seeds x (2 x 16 - 1) Heun calls


def test_a_bench_session_is_metered_whole():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                             "while time.process_time() - t < 1.2: pass"], start_new_session=True)
    meter = bench_all.SessionMeter(proc.pid)
    proc.wait()
    assert 0.5 <= meter.stop() <= 1.5          # polled while alive: most of its CPU second is seen
