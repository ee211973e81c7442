"""`python -m attack bench scale --json`: the attack at LAION scale on this machine (issue 15).

1. ingest: a generated caption parquet (default 2,000,000 rows, in a temporary folder) ingested
   by `python -m attack ingest` in a child process: seconds and the child's peak RSS; then the
   same captions as CSV and as JSONL, each into a fresh store (csv_ / jsonl_ keys; --formats);
2. the store at that size: a review page query and a label write (medians), after synthetic DCS
   scores for every caption and generations for a few hundred;
3. DCS captions/s of the demo model: the local engine, then `--engine ray` on 1 and on 2 actors
   of one torch thread each, and whether the Ray scores equal the local ones. The Ray runs come
   in --ray-rounds rounds in the order 1 2 2 1 ... actors, so a machine that drifts weighs on
   both sizes; a figure is the median over rounds, a speedup the median of the rounds' own
   ratios (ray_steady_speedup_rounds). Each Ray run is measured twice over:
   - end to end: captions / wall time of the whole stage, actor start-up included
     (ray_speedup_2_workers = 2 actors / 1 actor);
   - as an engine, from the blocks the actors report (attack.engine.ray.BlockStat: wall-clock
     time.time() when an actor got a block and when it returned it; one host, so the actors' and
     the driver's clocks compare). Start-up (ray_N_startup_s): from the Ray run's start (cluster
     up, input shards written) until the last actor has its model loaded (process, imports, model
     load). Steady state: the window from the moment the last actor finished its first block to
     the moment the first actor finished its last block, i.e. every actor warm and none out of
     work; its captions/s is the rows computed inside the window (each block's rows prorated by
     the share of its start-end span inside the window) over the window's length, so an actor
     idling between blocks counts against it, start-up, first batches and the tail do not
     (ray_steady_speedup_2_workers = 2 actors / 1 actor; None when an actor ran out of work
     before the last one finished its first block: too few blocks).
   model_loads_per_actor: the most models any actor's process had loaded by its last block (1:
   once per actor, not per block); ray_runs: the per-actor figures behind these, among them
   cpu_share, the actor's CPU seconds over the wall seconds of its blocks (below 1: it waited for
   a core, the machine was not idle).
The last line printed is one JSON object. Caches are warm: the parquet was just written (OS page
cache) and the demo weights were read by the local run before the Ray runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attack.engine.ray import BlockStat, ShardRun

ROOT = Path(__file__).resolve().parents[2]


def caption_chunks(n: int, chunk: int = 200_000):
    """n distinct captions as (captions, urls, dup counts) chunks, the same for every format."""
    import numpy as np

    words = np.array("a the photo of cat dog red blue painting portrait city night river poster art old new "
                     "woman man car house tree sky sea road book cover logo shirt".split())
    rng = np.random.default_rng(0)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        picks = words[rng.integers(0, len(words), (m, 6))]
        yield ([" ".join(row) + f" #{start + i}" for i, row in enumerate(picks.tolist())],
               [f"http://img.example/{start + i}.jpg" for i in range(m)], rng.integers(1, 5000, m).tolist())


def write_captions(path: Path, n: int, chunk: int = 200_000) -> None:
    """A paper-layout parquet of n distinct captions, written chunk by chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("caption", pa.string()), ("url", pa.string()), ("dup_count", pa.int64())])
    with pq.ParquetWriter(path, schema) as w:
        for caps, urls, dups in caption_chunks(n, chunk):
            w.write_table(pa.table({"caption": caps, "url": urls, "dup_count": dups}, schema=schema))


def write_text_list(path: Path, n: int, fmt: str) -> None:
    """The same captions as write_captions as a CSV (caption,url,dup_count) or a JSONL file."""
    import csv

    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f) if fmt == "csv" else None
        if w is not None:
            w.writerow(["caption", "url", "dup_count"])
        for caps, urls, dups in caption_chunks(n):
            if w is not None:
                w.writerows(zip(caps, urls, dups))
            else:
                f.writelines(json.dumps({"caption": c, "url": u, "dup_count": d}) + "\n"
                             for c, u, d in zip(caps, urls, dups))


# The child reports its own peak (VmHWM of the address space exec gave it). Its rusage would not
# do: Linux carries the parent's high-water mark across fork/vfork + exec into ru_maxrss, so every
# child of a large bench process would read as large as the bench itself.
PEAK_PROBE = """
import atexit, runpy, sys
def _peak():
    with open('/proc/self/status') as f:
        kb = next((line.split()[1] for line in f if line.startswith('VmHWM:')), '')
    sys.stderr.write('VERBATIM_PEAK_KB ' + kb + chr(10))
atexit.register(_peak)
sys.argv = ['attack'] + sys.argv[1:]
runpy.run_module('attack', run_name='__main__', alter_sys=True)
"""


def ingest_child(store: Path, src: Path) -> tuple[float, float]:
    """(seconds, peak RSS MB) of `python -m attack ingest` in a child process, the peak of that
    child alone (its VmHWM), so each of several ingests is measured by itself."""
    if not Path("/proc/self/status").exists():
        raise RuntimeError("bench scale: expected Linux's /proc/self/status to read a child's peak RSS, got none")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK_PROBE, "ingest", "--store", str(store), str(src)],
                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - t
    err = proc.stderr.decode(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"ingest failed ({proc.returncode}): {err[-2000:]}")
    peak = [line.split()[1] for line in err.splitlines() if line.startswith("VERBATIM_PEAK_KB ")]
    return seconds, int(peak[-1]) / 1024


def store_timings(path: Path, candidates: int, tries: int = 20) -> dict:
    """Page query and label write medians on the ingested store, with DCS scores for every caption."""
    import numpy as np

    from store import PageQuery, Store

    with Store.open(path, create=False) as s:
        ids = [r.id for r in s.caption_refs()]
        rng = np.random.default_rng(1)
        score_run = s.start_run("score", "bench-synthetic", {"score": "dcs"})
        with s.transaction():
            for b in range(0, len(ids), 200_000):
                chunk = ids[b:b + 200_000]
                s.add_scores(score_run, "dcs", zip(chunk, rng.random(len(chunk)).tolist()))
        s.finish_run(score_run, 0)
        gen_run = s.start_run("generate", "bench-synthetic", {"steps": 1})
        sha = s.put_image(np.zeros((8, 8, 3), dtype=np.uint8))
        picked = [int(c) for c in rng.choice(np.array(ids), candidates, replace=False)]
        with s.transaction():
            for cid in picked:
                s.add_generation(cid, gen_run, 0, 1, "heun-karras", sha, {})
        s.finish_run(gen_run, 0)
        queries = [PageQuery("dcs", True, human_label="unlabelled"), PageQuery("dcs", False, offset=100),
                   PageQuery("dcs", True, human_label="unlabelled", offset=50)]
        for q in queries:
            s.page(q)     # warm, as a running app is
        page_ms = []
        for i in range(tries):
            t = time.perf_counter()
            s.page(queries[i % len(queries)])
            page_ms.append((time.perf_counter() - t) * 1000)
        write_ms = []
        for i in range(tries):
            t = time.perf_counter()
            s.add_label(picked[i], ("MV", "TV", "N")[i % 3], "bench")
            write_ms.append((time.perf_counter() - t) * 1000)
        return {"page_query_ms": round(statistics.median(page_ms), 2),
                "label_write_ms": round(statistics.median(write_ms), 2), "store_mb": round(_du(path) / 2**20)}


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


STEADY_HOW = ("each actor reports, per block, wall-clock time.time() (one host: comparable across processes) when "
              "it got the block and when it returned it, and how many models its process has loaded; startup_s: "
              "from the Ray run's start to the last actor's model loaded; steady state: from the moment the last "
              "actor finished its first block to the moment the first actor finished its last one; steady "
              "captions/s: rows computed inside that window (each block's rows prorated by the share of its "
              "start-end span inside it) / the window's length, so actors idling between blocks count against "
              "it and start-up, first blocks and the tail do not; ray_runs cpu_share: an actor's CPU seconds / "
              "the wall seconds of its blocks (below 1: it waited for a core)")


def steady_state(run: ShardRun) -> dict:
    """A Ray run's figures from its actors' block reports (STEADY_HOW): start-up, the steady-state
    window and its captions/s (None when no window: an actor ran out of work before the last one
    finished its first block), model loads per actor, and per actor its busy share of the window,
    its own rate while busy (rows / seconds inside its blocks, first block left out) and its CPU
    share while busy (its process's CPU seconds / those seconds: below 1, it waited for a core)."""
    if not run.blocks:
        raise RuntimeError("bench scale: expected the Ray actors' block reports, got none")
    by_actor: dict[str, list[BlockStat]] = {}
    for b in run.blocks:
        by_actor.setdefault(b.actor, []).append(b)
    t0 = max(bs[0].end for bs in by_actor.values())      # every actor has finished its first block
    t1 = min(bs[-1].end for bs in by_actor.values())     # an actor has run out of work
    window = t1 - t0

    def inside(b: BlockStat) -> float:
        return max(0.0, min(b.end, t1) - max(b.start, t0))

    actors = []
    for name, bs in sorted(by_actor.items(), key=lambda kv: kv[1][0].ready):
        later = bs[1:]
        busy = sum(b.end - b.start for b in later)
        actors.append({"actor": name, "blocks": len(bs), "model_loads": max(b.loads for b in bs),
                       "startup_s": round(bs[0].ready - run.began, 2), "init_s": round(bs[0].ready - bs[0].init, 2),
                       "first_block_s": round(bs[0].end - bs[0].start, 2),
                       "busy_rate": round(sum(b.rows for b in later) / busy, 1) if busy > 0 else None,
                       "cpu_share": round(sum(b.cpu for b in later) / busy, 3) if busy > 0 else None,
                       "window_busy": round(sum(inside(b) for b in bs) / window, 3) if window > 0 else None})
    rows = sum(b.rows * inside(b) / (b.end - b.start) for b in run.blocks if b.end > b.start)
    return {"actors": actors, "startup_s": round(max(bs[0].ready for bs in by_actor.values()) - run.began, 2),
            "window_from_s": round(t0 - run.began, 2), "window_s": round(window, 2),
            "window_rows": round(rows, 1), "run_s": round(run.ended - run.began, 2),
            "steady_captions_per_s": round(rows / window, 1) if window > 0 else None,
            "model_loads_per_actor": max(a["model_loads"] for a in actors)}


def dcs_rates(work: Path, n: int, batch_size: int, shard_batches: int = 8, rounds: int = 2) -> dict:
    """DCS captions/s: local engine, then `rounds` rounds of Ray with 1 and with 2 single-thread
    actors, end to end and in the steady state of steady_state; identical values? The Ray runs
    alternate 1, 2, 2, 1, ... so drift of the machine falls on both sides; a speedup is one
    round's 2-actor figure over its 1-actor figure, and each figure is the median over rounds."""
    import torch

    from attack.engine.cluster import ray_output_to
    from attack.engine.ray import RayEngine, RayOptions, as_model_spec, connect
    from attack.models import load_model
    from attack.selection import select_captions
    from attack.stages.score import score_stage
    from store import CaptionRow, Store

    torch.set_num_threads(1)     # the local engine on one thread too: the same work per caption
    model = load_model("demo", "cpu")
    rows = [CaptionRow(f"a photo of item {i} on a {('red', 'blue', 'green')[i % 3]} table") for i in range(n)]
    order = [("local", 0, 0)] + [(f"ray{w}", w, r) for r in range(rounds) for w in ((1, 2) if r % 2 == 0 else (2, 1))]
    rates: dict[str, list[float]] = {}
    runs: dict[tuple[str, int], ShardRun] = {}      # the first ShardRun of each Ray run
    identical = True
    local = None
    for name, workers, r in order:
        with Store.open(work / (f"dcs-{name}" + (f"-{r + 1}" if r else ""))) as s:
            s.add_captions(rows)
            engine = None if not workers else RayEngine(as_model_spec(model),
                                                        RayOptions(workers=workers, shard_batches=shard_batches),
                                                        observe=lambda run, key=(name, r): runs.setdefault(key, run))
            if engine is not None:     # the cluster starts before the clock (its log in the store)
                with ray_output_to(s.path / "logs"):
                    connect(engine.options, s.path / "logs")
            t = time.perf_counter()
            score_stage(s, model, select_captions(s), ("dcs",), batch_size=batch_size, engine=engine)
            rates.setdefault(name, []).append(n / (time.perf_counter() - t))
            values = s.latest_scores("dcs", "demo")
            local = values if local is None else local
            identical = identical and values == local
    steady = {name: [steady_state(runs[(name, r)]) for r in range(rounds)] for name in ("ray1", "ray2")}
    per_s = {name: [st["steady_captions_per_s"] for st in steady[name]] for name in steady}
    ratios = [two / one if one and two else None for one, two in zip(per_s["ray1"], per_s["ray2"])]

    def med(values: list, digits: int = 1):
        return None if not values or None in values else round(statistics.median(values), digits)

    return {"local_captions_per_s": round(rates["local"][0], 1),
            "ray_rounds": rounds, "ray_order": " ".join(name for name, _, _ in order[1:]),
            "ray_1_worker_captions_per_s": med(rates["ray1"]), "ray_2_workers_captions_per_s": med(rates["ray2"]),
            "ray_speedup_2_workers": med([b / a for a, b in zip(rates["ray1"], rates["ray2"])], 3),
            "ray_1_worker_startup_s": med([st["startup_s"] for st in steady["ray1"]], 2),
            "ray_2_workers_startup_s": med([st["startup_s"] for st in steady["ray2"]], 2),
            "ray_1_worker_steady_captions_per_s": med(per_s["ray1"]),
            "ray_2_workers_steady_captions_per_s": med(per_s["ray2"]),
            "ray_steady_speedup_2_workers": med(ratios, 3),
            "ray_steady_speedup_rounds": [None if x is None else round(x, 3) for x in ratios],
            "model_loads_per_actor": max(st["model_loads_per_actor"] for v in steady.values() for st in v),
            "ray_steady_how": STEADY_HOW, "ray_runs": {"1_worker": steady["ray1"], "2_workers": steady["ray2"]},
            "identical": identical, "dcs_captions": n, "dcs_batch_size": batch_size,
            "ray_shard_rows": batch_size * shard_batches}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack bench scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--captions", type=int, default=2_000_000, help="rows of the generated caption parquet")
    ap.add_argument("--candidates", type=int, default=500, help="captions given a synthetic generation")
    ap.add_argument("--dcs-captions", type=int, default=8192, help="captions scored by each engine")
    ap.add_argument("--batch-size", type=int, default=64, help="DCS batch")
    ap.add_argument("--shard-batches", type=int, default=8, help="batches per Ray block (shard)")
    ap.add_argument("--ray-rounds", type=int, default=2,
                    help="rounds of Ray runs on 1 and 2 actors, alternating 1 2 2 1 ... (default 2); medians")
    ap.add_argument("--formats", default="csv,jsonl",
                    help="text formats whose ingest is measured beside parquet (comma-separated; '' for none)")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    a = ap.parse_args(argv)
    out: dict = {"cpu_count": os.cpu_count(), "caches_warm": True}
    with tempfile.TemporaryDirectory(prefix="verbatim-scale-") as tmp:
        tmp = Path(tmp)
        src = tmp / "captions.parquet"
        write_captions(src, a.captions)
        seconds, peak = ingest_child(tmp / "store", src)
        out.update(ingest_captions=a.captions, ingest_s=round(seconds, 1), ingest_peak_mb=round(peak, 1),
                   parquet_mb=round(src.stat().st_size / 2**20, 1))
        out.update(store_timings(tmp / "store", a.candidates))
        for fmt in filter(None, a.formats.split(",")):
            if fmt not in ("csv", "jsonl"):
                ap.error(f"--formats: expected csv and/or jsonl, got {fmt!r}")
            text = tmp / f"captions.{fmt}"
            write_text_list(text, a.captions, fmt)
            seconds, peak = ingest_child(tmp / f"store-{fmt}", text)
            out.update({f"{fmt}_ingest_s": round(seconds, 1), f"{fmt}_ingest_peak_mb": round(peak, 1),
                        f"{fmt}_mb": round(text.stat().st_size / 2**20, 1)})
            text.unlink()
        out.update(dcs_rates(tmp, a.dcs_captions, a.batch_size, a.shard_batches, max(1, a.ray_rounds)))
    out["targets_met"] = (out["ingest_captions"] >= 2_000_000
                          and all(v <= 500 for k, v in out.items() if k.endswith("ingest_peak_mb"))
                          and (out["ray_steady_speedup_2_workers"] or 0) >= 1.8
                          and out["model_loads_per_actor"] == 1 and out["identical"])
    if not a.json:
        for k, v in out.items():
            print(f"{k:>30}: {v}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
