"""One writer decides (issue 26): processes that run one stage on one store at once split its units
through claims in the store instead of computing each twice; a claim whose process died expires and
is taken over, and every process returns with the whole run done."""
from __future__ import annotations

import re
import subprocess
import sys

from attack.stages.claims import owner_gone, owner_id, shared_batches
from store import Store
from tests.conftest import REPO, subprocess_env


def ALIVE(owner: str) -> bool:
    """The in-process workers below stand for separate live processes: none is gone."""
    return False


def _run(store: Store) -> int:
    return store.start_run("score", "test", {})


def test_two_workers_on_one_run_split_its_units(tmp_path):
    with Store.open(tmp_path / "s") as s:
        run = _run(s)
        units = list(range(10))
        written: set[str] = set()
        a = shared_batches(s, run, units, str, 3, lambda keys: written & set(keys), gone=ALIVE)
        b = shared_batches(s, run, units, str, 3, lambda keys: written & set(keys), gone=ALIVE)
        first_a, first_b = next(a), next(b)
        assert (first_a, first_b) == ([0, 1, 2], [3, 4, 5])      # b skips what a holds
        written |= {str(u) for u in first_a + first_b}
        rest = [next(a), next(b)]
        assert rest == [[6, 7, 8], [9]]
        written |= {str(u) for u in rest[0] + rest[1]}
        assert list(a) == [] and list(b) == []                     # both end: every unit written once
        # every claim was released: another owner may claim them all (none is done in its eyes)
        assert s.claim_units(run, [str(u) for u in units], "someone else", 60, 10)[0] == [str(u) for u in units]


def test_a_unit_another_worker_wrote_and_released_is_not_claimed_again(tmp_path):
    with Store.open(tmp_path / "s") as s:
        run = _run(s)
        written: set[str] = set()
        a = shared_batches(s, run, [0, 1, 2, 3], str, 2, lambda keys: written & set(keys), gone=ALIVE)
        assert next(a) == [0, 1]
        written |= {"0", "1"}
        assert next(a) == [2, 3]                                  # a released 0 and 1 when it claimed these
        late = shared_batches(s, run, [0, 1, 2, 3], str, 2, lambda keys: written & set(keys), sleep=lambda _: None, gone=ALIVE)
        written |= {"2", "3"}
        assert list(a) == []
        assert list(late) == []                                   # 0, 1 done; 2, 3 done by the time it looks


def test_a_worker_waits_for_units_another_holds_and_takes_over_an_expired_claim(tmp_path):
    with Store.open(tmp_path / "s") as s:
        run = _run(s)
        written: set[str] = set()
        dead = shared_batches(s, run, [0, 1], str, 2, lambda keys: written & set(keys), claim_s=0.05, gone=ALIVE)
        assert next(dead) == [0, 1]                                # claims both, then its process dies
        waits = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            import time
            time.sleep(0.06)                                       # past the dead claim's expiry

        live = shared_batches(s, run, [0, 1], str, 2, lambda keys: written & set(keys), sleep=sleep, gone=ALIVE)
        assert next(live) == [0, 1] and len(waits) == 1            # waited once, then took both over
        written |= {"0", "1"}
        assert list(live) == []


def test_two_runs_started_together_compute_each_score_and_generation_once(tmp_path):
    """Two `attack run` of one command on one store: scores, generations, neighbour searches and labels
    split between them, one run each."""
    from PIL import Image

    from tests.conftest import tiny_image

    n, top_k, seeds = 160, 8, 2
    (tmp_path / "list.txt").write_text("".join(f"a photo number {i} of a red chair\n" for i in range(n)))
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(tiny_image(i)).save(tmp_path / "imgs" / f"{i}.png")
    with Store.open(tmp_path / "s") as s:
        from attack.ingest import ingest
        ingest(s, images=tmp_path / "imgs")
    cmd = [sys.executable, "-m", "attack", "run", "--store", str(tmp_path / "s"), "--model", "demo", "--captions",
           str(tmp_path / "list.txt"), "--scores", "dcs", "--top-k", str(top_k), "--seeds", str(seeds), "--steps", "2",
           "--batch-size", "8", "--device", "cpu"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs

    def computed(stage: str) -> list[int]:
        return [int(re.search(rf"{stage}: run \d+ \(\w+\), (\d+) computed", out).group(1)) for out, _ in outs]

    assert sum(computed("score dcs")) == n, outs                 # was 2 x n when both computed everything
    assert sum(computed("generate heun-karras")) == top_k * seeds, outs
    searched = [int(re.search(r"retrieve: run \d+ \(\w+\), (\d+) generations searched", o).group(1)) for o, _ in outs]
    labelled = [int(re.search(r"label: run \d+ \(\w+\), (\d+) captions labelled", o).group(1)) for o, _ in outs]
    assert (sum(searched), sum(labelled)) == (top_k * seeds, top_k), outs
    with Store.open(tmp_path / "s", readonly=True) as s:
        (score,), (gen,) = s.runs(stage="score"), s.runs(stage="generate")
        assert len(s.runs(stage="retrieve")) == len(s.runs(stage="label")) == 1
        assert (score.status, s.score_count(score.id, "dcs")) == ("done", n)
        assert gen.status == "done" and len(s.generated_pairs(gen.id)) == top_k * seeds
        assert s.caption_count() == n                            # the list ingested once


def test_claims_of_an_ended_process_or_a_failed_call_are_free_at_once(tmp_path):
    import os
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    assert owner_gone(f"{host}:{int(dead.stdout)}:abcd1234")           # that process has ended
    assert owner_gone(owner_id())                                        # an earlier call of this process
    assert not owner_gone(f"{host}:{os.getppid()}:abcd1234")             # a live process
    assert not owner_gone(f"another-host:{int(dead.stdout)}:abcd1234")   # another host's: until it expires
    with Store.open(tmp_path / "s") as s:
        run = _run(s)
        s.claim_units(run, ["0", "1"], f"{host}:{int(dead.stdout)}:abcd1234", 600, 2)   # a killed run's claims
        written: set[str] = set()
        waits = []
        again = shared_batches(s, run, [0, 1], str, 2, lambda keys: written & set(keys), sleep=waits.append)
        assert next(again) == [0, 1] and waits == []                    # the rerun takes them over, no wait
