"""`python -m attack bench scale --json`: the attack at LAION scale on this machine (issue 15).

1. ingest: a generated caption parquet (default 2,000,000 rows, in a temporary folder) ingested
   by `python -m attack ingest` in a child process: seconds and the child's peak RSS; then the
   same captions as CSV and as JSONL, each into a fresh store (csv_ / jsonl_ keys; --formats);
2. the store at that size: a review page query and a label write (medians), after synthetic DCS
   scores for every caption and generations for a few hundred;
3. DCS captions/s of the demo model: the local engine, then `--engine ray` on 1 and on 2 actors
   of one torch thread each (wall time of the whole stage, actor start included), and whether
   the Ray scores equal the local ones. ray_speedup_2_workers = 2 actors / 1 actor.
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


def dcs_rates(work: Path, n: int, batch_size: int, shard_batches: int = 8) -> dict:
    """DCS captions/s: local engine, Ray with 1 and with 2 single-thread actors; identical values?"""
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
    rates, values = {}, {}
    for name, workers in (("local", 0), ("ray1", 1), ("ray2", 2)):
        with Store.open(work / f"dcs-{name}") as s:
            s.add_captions(rows)
            engine = None if not workers else RayEngine(as_model_spec(model),
                                                               RayOptions(workers=workers, shard_batches=shard_batches))
            if engine is not None:     # the cluster starts before the clock (its log in the store)
                with ray_output_to(s.path / "logs"):
                    connect(engine.options, s.path / "logs")
            t = time.perf_counter()
            score_stage(s, model, select_captions(s), ("dcs",), batch_size=batch_size, engine=engine)
            rates[name] = n / (time.perf_counter() - t)
            values[name] = s.latest_scores("dcs", "demo")
    return {"local_captions_per_s": round(rates["local"], 1), "ray_1_worker_captions_per_s": round(rates["ray1"], 1),
            "ray_2_workers_captions_per_s": round(rates["ray2"], 1),
            "ray_speedup_2_workers": round(rates["ray2"] / rates["ray1"], 3),
            "identical": values["ray1"] == values["local"] and values["ray2"] == values["local"],
            "dcs_captions": n, "dcs_batch_size": batch_size, "ray_shard_rows": batch_size * shard_batches}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack bench scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--captions", type=int, default=2_000_000, help="rows of the generated caption parquet")
    ap.add_argument("--candidates", type=int, default=500, help="captions given a synthetic generation")
    ap.add_argument("--dcs-captions", type=int, default=8192, help="captions scored by each engine")
    ap.add_argument("--batch-size", type=int, default=64, help="DCS batch")
    ap.add_argument("--shard-batches", type=int, default=8, help="batches per Ray block (shard)")
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
        out.update(dcs_rates(tmp, a.dcs_captions, a.batch_size, a.shard_batches))
    out["targets_met"] = (out["ingest_captions"] >= 2_000_000
                          and all(v <= 500 for k, v in out.items() if k.endswith("ingest_peak_mb"))
                          and out["ray_speedup_2_workers"] >= 1.6 and out["identical"])
    if not a.json:
        for k, v in out.items():
            print(f"{k:>30}: {v}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
