"""`python -m attack bench all [--quick]`: every benchmark, each in a child process, written to
docs/benchmarks.md with the machine it ran on.

Each section holds the bench's command, its JSON (the last line it printed), the date, the commit,
the machine (cores, torch threads, GPU or not), the load average when it started and ended, and
whether the machine was idle then. `--quick` gives the benches that allow it smaller inputs (the
command in each section says which); `--only a,b` reruns some sections and keeps the others of an
existing file. This file is the only place measured figures live: the README and the docs link
here instead of quoting numbers. The last line printed is one JSON object (section -> exit, seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"
# A section counts as run on an idle machine when other processes used at most this share of all
# cores while it ran (the load average lags by minutes, so after one bench the next would always
# look busy; it is reported beside, as asked of every bench).
IDLE_OTHER_SHARE = 0.10
_BEGIN = "<!-- bench:{name} -->"
_END = "<!-- /bench:{name} -->"


@dataclass(frozen=True)
class Bench:
    name: str
    what: str
    argv: tuple[str, ...]          # after `python -m`
    quick: tuple[str, ...] = ()    # extra arguments with --quick
    full: tuple[str, ...] = ()     # extra arguments without it


BENCHES: tuple[Bench, ...] = (
    Bench("memorization", "does the demo model copy what it should (full samplings of the planted captions)",
          ("attack", "bench", "memorization", "--json"), ("--unique-limit", "40", "--seeds", "2")),
    Bench("ranking", "scores and automatic labels of the demo store against its planted truth, and the "
          "demo build's time (from scratch in a temporary folder; with --quick, data/demo is built only "
          "when absent)", ("attack", "bench", "ranking", "--json"), full=("--fresh",)),
    Bench("detectors", "every one-step detector and rank fusions on the demo world",
          ("attack", "bench", "detectors", "--json")),
    Bench("throughput", "batched vs the paper's per-caption DCS / ECS loop, demo model, CPU",
          ("attack", "bench", "throughput", "--json"), ("--rounds", "3"), ("--rounds", "9")),
    Bench("labels", "labels, masks and flags on the development world (thresholds chosen there) and the held-out "
                    "world, through the closed-model path",
          ("attack", "bench", "labels", "--json"), ("--size", "256")),
    Bench("scale", "streaming caption ingest, the store at that size, DCS local vs Ray",
          ("attack", "bench", "scale", "--json"),
          ("--captions", "200000", "--dcs-captions", "1024", "--formats", "csv")),
    Bench("mitigation", "the demo model against each inference-time mitigation: copies by type among the planted "
                        "captions, the uniques' distance to their own image, extra network calls, compare outcomes",
          ("attack", "bench", "mitigation", "--json"), ("--uniques", "8", "--seeds", "1")),
    Bench("store", "the store's review queries on a synthetic store",
          ("store", "bench", "--json"), ("--captions", "200000", "--candidates", "20000")),
    Bench("review", "the review app's server time to open and to label a candidate",
          ("review", "bench", "--json"), ("--candidates", "20000")),
    Bench("review-browser", "key to next candidate rendered, in Chromium, on a copy of the demo store",
          ("review", "bench", "--browser", "--json"), ("--candidates", "20")),
)
NAMES = tuple(b.name for b in BENCHES)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def commit() -> str:
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{head} (with uncommitted changes)" if dirty else head


def machine() -> dict:
    """Cores, torch threads and the accelerator, asked of a child so this process stays torch-free."""
    probe = ("import json, os, torch; g = torch.cuda.is_available(); "
             "print(json.dumps({'torch': torch.__version__, 'torch_threads': torch.get_num_threads(), "
             "'gpu': torch.cuda.get_device_name(0) if g else None}))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    info = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else {}
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(), **info}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_busy_s() -> Optional[float]:
    """CPU seconds every process on the machine has used since boot (/proc/stat); None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu_s(root: int) -> dict[tuple[int, int], float]:
    """(pid, start time) -> CPU seconds so far, of every live process in `root`'s session or below
    it (a browser is started detached, in a session of its own, by a child of the bench)."""
    table, tick = {}, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                f = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            # fields 4 (ppid), 6 (session), 14 + 15 (CPU ticks), 22 (start time)
            table[int(entry.name)] = (int(f[1]), int(f[3]), (int(f[11]) + int(f[12])) / tick, int(f[19]))
    out = {}
    for pid, (ppid, sid, cpu, start) in table.items():
        up, seen = pid, 0
        while up > 1 and up != root and seen < 64:
            up, seen = table.get(up, (0,))[0], seen + 1
        if sid == root or up == root:
            out[(pid, start)] = cpu
    return out


class SessionMeter:
    """CPU used by a bench's whole process tree: the child runs in a session of its own, whose
    members and descendants are polled twice a second, so helpers it never waits for (a browser,
    a served app) count as its own."""

    def __init__(self, sid: int) -> None:
        self.sid, self.seen = sid, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self.seen.update(tree_cpu_s(self.sid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.seen.values())


def other_share(busy_s: Optional[float], child_s: float, wall_s: float) -> Optional[float]:
    """Share of all cores used by other processes than the bench (and what it waited for)."""
    if busy_s is None or wall_s <= 0:
        return None
    return round(max(0.0, busy_s - child_s) / (wall_s * (os.cpu_count() or 1)), 3)


def last_json(stdout: str) -> Optional[dict]:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def run_one(bench: Bench, quick: bool) -> dict:
    """Run one bench in a child; stderr (progress) passes through, stdout is kept for its JSON."""
    argv = [*bench.argv, *(bench.quick if quick else bench.full)]
    start_load, busy0, child0, t0 = load(), cpu_busy_s(), children_cpu_s(), time.perf_counter()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    meter = SessionMeter(proc.pid)
    try:
        stdout, _ = proc.communicate()
    except BaseException:                # Ctrl-C reaches this process only: end the bench's session too
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout)
    wall, busy1, polled = time.perf_counter() - t0, cpu_busy_s(), meter.stop()
    mine = max(children_cpu_s() - child0, polled)      # each a lower bound of the bench's own CPU
    others = other_share(None if busy0 is None or busy1 is None else busy1 - busy0, mine, wall)
    result = last_json(r.stdout)
    return {"name": bench.name, "what": bench.what, "command": "python -m " + " ".join(argv),
            "started": started, "seconds": round(wall, 1), "exit": r.returncode, "load_start": start_load,
            "load_end": load(), "other_share": others, "idle": others is not None and others <= IDLE_OTHER_SHARE,
            "json": result, "tail": None if result is not None else r.stdout.strip()[-2000:]}


def section(run: dict, info: dict, revision: str) -> str:
    others = "unknown" if run["other_share"] is None else f"{run['other_share']:.1%}"
    idle_text = "idle" if run["idle"] else "not idle"
    lines = [_BEGIN.format(name=run["name"]), f"## {run['name']}", "", run["what"] + ".", "",
             f"- command: `{run['command']}`",
             f"- run: {run['started']}, commit {revision}, {run['seconds']} s, exit {run['exit']}",
             f"- machine: {info.get('cores')} cores, torch {info.get('torch', '?')} with "
             f"{info.get('torch_threads', '?')} threads, GPU: {info.get('gpu') or 'none'}",
             f"- {idle_text}: other processes used {others} of the cores while it ran (idle: at most "
             f"{IDLE_OTHER_SHARE:.0%}); load average (1 min) {run['load_start']} at start, {run['load_end']} at end",
             ""]
    if run["json"] is not None:
        lines += TABLES.get(run["name"], lambda result: [])(run["json"])
        lines += ["```json", json.dumps(run["json"], indent=1, sort_keys=False), "```"]
    else:
        lines += ["No JSON line was printed; the end of its output:", "", "```", run["tail"] or "", "```"]
    return "\n".join(lines + [_END.format(name=run["name"]), ""])


def detectors_table(result: dict) -> list[str]:
    """The detectors bench as a table (headline TPR counts every negative; the column beside it
    leaves the planted textures out)."""
    rows = ["| detector | AUC | TPR at 1% FPR | (textures left out) | guided calls / caption | captions/s |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, v in result.get("scores", {}).items():
        rows.append(f"| `{name}` | {v['auc']:.4f} | {v['tpr_at_1pct_fpr']:.4f} | "
                    f"{v['tpr_at_1pct_fpr_without_textures']:.4f} | {v['evals_per_caption']:.2f} | "
                    f"{v['captions_per_s']:.1f} |")
    return rows + [""]


def cost_table(result: dict) -> list[str]:
    """What an audit costs per caption, from the throughput bench: guided UNet calls (counted,
    a cond + uncond pair is one) and captions/s of this run's model and device."""
    from attack.sampling import heun_evals
    from attack.stages.generate import GenerateParams

    g = GenerateParams()
    per_gen = heun_evals(g.steps) * len(g.seeds)
    evals = result.get("evals_per_caption", {})
    where = f"{result.get('model')} model, {result.get('device')}, {result.get('dtype')}"
    rows = [f"Cost per caption ({where}; the GPU check gives SD-1.5-sized figures on CUDA):", "",
            "| stage | guided UNet calls per caption | captions/s here |", "| --- | --- | --- |",
            f"| score DCS (batched) | {evals.get('dcs', 0):.2f} | {result.get('dcs_batched_per_s', 0):.1f} |",
            f"| score ECS (batched, J = 4 one-step images + VAE decodes) | {evals.get('ecs', 0):.2f} | "
            f"{result.get('ecs_batched_per_s', 0):.1f} |",
            f"| generate, per top-K caption (J = {len(g.seeds)} seeds x {g.steps} Heun steps) | {per_gen} | "
            "not measured here |",
            "| retrieve + label | 0 | see `labels` (ms per generation) |", ""]
    return rows


TABLES = {"detectors": detectors_table, "throughput": cost_table}


HEADER = """# Benchmarks

Generated by `python -m attack bench all` (last on {date}{flags}); each section gives the command,
date and commit it was measured with. Do not edit by hand (rerun it, or `--only NAME` for one
section). Every measured figure the README and the docs mention is here.

Machine: {cores} cores, {platform}, Python {python}, torch {torch} ({threads} threads), GPU: {gpu}.

"""


def _sections(text: str) -> dict[str, str]:
    found = {}
    for name in NAMES:
        m = re.search(re.escape(_BEGIN.format(name=name)) + r".*?" + re.escape(_END.format(name=name)) + r"\n",
                      text, re.S)
        if m:
            found[name] = m.group(0)
    return found


def render(runs: list[dict], info: dict, revision: str, quick: bool, old: str = "") -> str:
    kept = _sections(old)
    kept.update({r["name"]: section(r, info, revision) for r in runs})
    head = HEADER.format(flags=", with --quick" if quick else "", date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                         cores=info.get("cores"), platform=info.get("platform"), python=info.get("python"),
                         torch=info.get("torch", "?"), threads=info.get("torch_threads", "?"),
                         gpu=info.get("gpu") or "none")
    return head + "\n".join(kept[n] for n in NAMES if n in kept)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack bench all", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs where a bench allows them")
    ap.add_argument("--only", default="", help=f"comma-separated sections to (re)run, among {', '.join(NAMES)}; "
                                               "the file's other sections are kept")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the markdown file written (default docs/benchmarks.md)")
    ap.add_argument("--json", action="store_true", help="accepted for symmetry: the last line is always JSON")
    a = ap.parse_args(argv)
    only = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in only if n not in NAMES]
    if unknown:
        ap.error(f"expected sections among {', '.join(NAMES)}, got {', '.join(unknown)}")
    chosen = [b for b in BENCHES if not only or b.name in only]
    info, revision = machine(), commit()
    runs = []
    for bench in chosen:
        print(f"bench all: {bench.name} ...", file=sys.stderr, flush=True)
        runs.append(run_one(bench, a.quick))
        old = a.out.read_text(encoding="utf-8") if a.out.exists() else ""
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(render(runs, info, revision, a.quick, old), encoding="utf-8")  # after each: nothing lost
    print(json.dumps({r["name"]: {"exit": r["exit"], "seconds": r["seconds"], "idle": r["idle"]} for r in runs}))
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
