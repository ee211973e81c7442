"""`python -m attack bench throughput --json`: captions per second of DCS and ECS, batched vs a
per-caption loop that does what the paper's public code does (run_wb_attack.py / run_bb_attack.py:
one pipeline call per caption and seed, both prompts encoded per call, a cond + uncond batch of 2,
PIL Lanczos resize and scipy Sobel edges per image), on the same model in the same process. The
scores of both paths are compared (`max_abs_diff_batched_vs_loop`). The last line printed is one
JSON object.

A single timing of a path cannot tell a 10% change from noise on a shared machine, so the four
paths are timed in `--rounds` interleaved rounds (batched DCS, DCS loop, batched ECS, ECS loop,
the order reversed every other round): a speedup is the ratio of one round's batched and loop
rates, which saw the same machine, and every figure is the median over the rounds with its spread
(min, max, (max - min) / median). The JSON also says how busy the machine was (load average, and
the share of the cores other processes used), and compares each speedup with the floor kept in
attack/bench/floors.json (`above_floor`); tests/test_throughput_guard.py runs a short version
against that file's looser CI floor.

Both paths run in one process with the allocator setting the command line gives every compute
process (attack.runtime.keep_freed_memory; the JSON's `malloc_keeps_freed_memory`).

`--model demo` uses the trained demo weights when they exist, else a demo-architecture network
with random weights (speed does not depend on the weights; the JSON says which). `--model
sd-random --device cuda` is a Stable-Diffusion-1.5-sized model with random weights.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from attack.models import load_model
from attack.models.base import TextToImageModel
from attack.runtime import freed_memory_kept, keep_freed_memory
from attack.sampling import karras_sigmas, sample_heun
from attack.scores.dcs import DCSParams, dcs
from attack.scores.ecs import ECSParams, ecs
from attack.scores.wen import WenParams, wen

ATTACK_LIST = Path(__file__).resolve().parents[1] / "demo" / "attack_list.txt"
FLOORS = Path(__file__).with_name("floors.json")


def bench_captions(n: int) -> list[str]:
    """The first n captions of the demo attack list (padded with numbered ones if short)."""
    caps = [c.strip() for c in ATTACK_LIST.read_text(encoding="utf-8").splitlines() if c.strip()] if ATTACK_LIST.is_file() else []
    caps += [f"benchmark caption number {i}" for i in range(max(0, n - len(caps)))]
    return caps[:n]


def demo_architecture(captions: Sequence[str], device: str = "cpu", seed: int = 0,
                      channels: tuple[int, ...] | None = None, text_dim: int | None = None) -> TextToImageModel:
    """The demo model's network with random weights (its default sizes unless given), with a
    vocabulary built from `captions`."""
    from attack.demo.net import DemoConfig, DemoNet
    from attack.demo.text import WordTokenizer
    from attack.models.demo import DemoModel

    kw = {"vocab": tuple(WordTokenizer.from_captions(captions).vocab)}
    if channels is not None:
        kw["block_out_channels"] = tuple(channels)
    if text_dim is not None:
        kw["text_dim"] = text_dim
    with torch.random.fork_rng(devices=[]):  # seeded weights, caller's RNG untouched
        torch.manual_seed(seed)
        net = DemoNet(DemoConfig(**kw)).eval().requires_grad_(False)
    return DemoModel(net, device)


def _model(spec: str, device: str, dtype: str | None, captions: Sequence[str]) -> tuple[TextToImageModel, str]:
    if spec == "demo":
        from attack.demo.net import WEIGHTS_DIR

        if not (WEIGHTS_DIR / "model.safetensors").is_file():
            return demo_architecture(captions, device), "random (demo architecture; trained weights not found)"
        return load_model("demo", device), "trained"
    if spec == "sd-random":
        return load_model(spec, device, dtype=dtype), "random (SD 1.5 architecture)"
    return load_model(spec, device, dtype=dtype), "as loaded"


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Wall seconds of one call (CUDA synchronised on both sides) and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def interleaved(calls: Sequence[tuple[str, Callable[[], object]]], rounds: int,
                device: torch.device) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Seconds of each named call in each of `rounds` rounds, the calls taking turns (the order
    reversed every other round), so a batched run and its loop see the same machine; and the
    last result of each."""
    times: dict[str, list[float]] = {name: [] for name, _ in calls}
    outs: dict[str, object] = {}
    for r in range(rounds):
        for name, fn in (calls if r % 2 == 0 else calls[::-1]):
            dt, outs[name] = _timed(fn, device)
            times[name].append(dt)
    return times, outs


def spread(values: Sequence[float]) -> dict:
    """Median, min, max and (max - min) / median in percent of a figure measured once per round."""
    med = statistics.median(values)
    return {"median": round(med, 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "spread_pct": round(100 * (max(values) - min(values)) / med, 1) if med else None}


def floors(path: Path = FLOORS) -> dict:
    """The speedup floors kept in the repository (attack/bench/floors.json)."""
    return json.loads(path.read_text(encoding="utf-8"))


def below_floor(result: dict, floor: dict[str, float]) -> list[str]:
    """One line per score whose median speedup in `result` is under its floor (none: the lead holds)."""
    return [f"{s}: expected batched at least {floor[s]}x the loop, got {result[f'{s}_speedup']}x "
            f"(rounds {result['spread'][f'{s}_speedup']}, machine {result['machine']})"
            for s in ("dcs", "ecs") if result[f"{s}_speedup"] < floor[s]]


class MachineMeter:
    """The load average at start and end, and the share of all cores that other processes used
    while the bench ran (attack.bench.all's /proc/stat reading, less this process's own CPU time)."""

    def __init__(self) -> None:
        from attack.bench.all import cpu_busy_s, load

        self.load_start, self.busy0, self.own0, self.t0 = load(), cpu_busy_s(), _own_cpu_s(), time.perf_counter()

    def report(self) -> dict:
        from attack.bench.all import cpu_busy_s, load, other_share

        busy1, wall = cpu_busy_s(), time.perf_counter() - self.t0
        busy = None if self.busy0 is None or busy1 is None else busy1 - self.busy0
        return {"cores": os.cpu_count(), "load_average_1min": [self.load_start, load()],
                "other_processes_share": other_share(busy, _own_cpu_s() - self.own0, wall)}


def _own_cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def pipeline_call(model: TextToImageModel, caption: str, seed: int, steps: int,
                  guidance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One diffusers pipeline call as the public code makes it: the caption and the empty negative
    prompt encoded anew, then the guided Heun steps on a cond + uncond batch of 2 from the seeded
    noise; (x_T, x_0) latents."""
    sigmas = karras_sigmas(steps, model.sigma_min, model.sigma_max)
    cond, unc = model.encode([caption]), model.encode([""])
    x_t = model.noise([caption], [seed]) * float(sigmas[0])
    return x_t, sample_heun(lambda z, s: model.denoise(z, s, cond, guidance, unc), x_t, sigmas)


def dcs_loop(model: TextToImageModel, captions: Sequence[str], p: DCSParams) -> torch.Tensor:
    """The public code's way (run_wb_attack.py): one pipeline call per caption (pipeline_call,
    one step); no decode."""
    out = []
    for c in captions:
        x_t, x_0 = pipeline_call(model, c, p.seed, 1, p.guidance)
        out.append((x_t.float() - x_0.float()).pow(2).flatten(1).mean(1).cpu())
    return torch.cat(out)


def paper_edge_score(group: Sequence[np.ndarray], p: ECSParams) -> float:
    """ECS of J images as the public code scores them (processing_utils.get_edge_intersection_score):
    float32 H x W x 3 arrays in 0..255, scipy.ndimage.sobel along both spatial axes, channel-summed
    magnitude > threshold, mean of the J maps > vote, fraction of pixels set."""
    maps = []
    for img in group:
        im = img / 255.0
        mag = np.hypot(ndimage.sobel(im, axis=0), ndimage.sobel(im, axis=1)).sum(axis=2)
        maps.append((mag > p.edge_threshold).astype(np.float64))
    return float((np.mean(maps, axis=0) > p.vote).astype(np.float32).mean())


def ecs_loop(model: TextToImageModel, captions: Sequence[str], p: ECSParams) -> torch.Tensor:
    """The public code's way (run_bb_attack.py): per caption, per seed, one pipeline call
    (pipeline_call, decoded), the PIL image resized to 256 with Lanczos, then the scipy edge score
    of the J images. The same images as model.sample, which reuses a cached empty-prompt embedding
    a pipeline call does not have."""
    out = []
    for c in captions:
        group = []
        for s in p.seeds:
            img = model.decode(pipeline_call(model, c, s, p.steps, p.guidance)[1]).float().cpu()[0]
            u8 = (img.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            pil = Image.fromarray(u8).resize((p.size, p.size), resample=Image.LANCZOS)
            group.append(np.asarray(pil).astype(np.float32))
        out.append(paper_edge_score(group, p))
    return torch.tensor(out, dtype=torch.float32)


def run(spec: str = "demo", device: str = "cpu", dtype: str | None = None, n_captions: int = 64,
        n_loop: int = 16, batch_size: int = 128, rounds: int = 5) -> dict:
    """The figures of the module docstring: `rounds` interleaved rounds of the four paths, on
    torch's current CPU threads."""
    meter = MachineMeter()
    captions = bench_captions(n_captions)
    loop_caps = captions[:n_loop]
    model, weights = _model(spec, device, dtype, captions)
    dev = model.device
    dp, ep, wp = DCSParams(), ECSParams(), WenParams()
    ecs_batch = max(1, batch_size // len(ep.seeds))
    # warm-up: lazy initialisation, allocator, kernels for every batch shape timed below
    dcs(model, captions, dp, batch_size=batch_size)
    dcs_loop(model, loop_caps[:1], dp)
    ecs(model, captions[:ecs_batch], ep, batch_size=ecs_batch)
    ecs_loop(model, loop_caps[:1], ep)
    times, outs = interleaved([
        ("dcs_batched", lambda: dcs(model, captions, dp, batch_size=batch_size)),
        ("dcs_loop", lambda: dcs_loop(model, loop_caps, dp)),
        ("ecs_batched", lambda: ecs(model, captions, ep, batch_size=ecs_batch)),
        ("ecs_loop", lambda: ecs_loop(model, loop_caps, ep))], rounds, dev)
    rate = {k: [(len(loop_caps) if k.endswith("loop") else len(captions)) / t for t in v] for k, v in times.items()}
    ratio = {s: [b / lo for b, lo in zip(rate[f"{s}_batched"], rate[f"{s}_loop"])] for s in ("dcs", "ecs")}
    db, eb = outs["dcs_batched"], outs["ecs_batched"]
    w = wen(model, captions[:2], wp)
    floor = floors()["throughput_speedup_floor"]
    med = {k: statistics.median(v) for k, v in rate.items()}
    speedup = {s: statistics.median(v) for s, v in ratio.items()}
    return {
        "model": spec, "weights": weights, "device": str(dev), "dtype": str(model.dtype).replace("torch.", ""),
        "captions_batched": len(captions), "captions_loop": len(loop_caps), "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(), "rounds": rounds,
        "caches": "warm: the model is loaded and every batch shape timed ran once before the rounds",
        "malloc_keeps_freed_memory": freed_memory_kept(),
        "how": "each round times batched DCS, the DCS loop, batched ECS and the ECS loop in turn (the order "
               "reversed every other round); a speedup is batched / loop captions/s of one round, and each "
               "figure is the median over the rounds",
        "dcs_batched_per_s": round(med["dcs_batched"], 3), "dcs_loop_per_s": round(med["dcs_loop"], 3),
        "dcs_speedup": round(speedup["dcs"], 2),
        "ecs_batched_per_s": round(med["ecs_batched"], 3), "ecs_loop_per_s": round(med["ecs_loop"], 3),
        "ecs_speedup": round(speedup["ecs"], 2),
        "spread": {**{f"{k}_per_s": spread(v) for k, v in rate.items()},
                   **{f"{s}_speedup": spread(v) for s, v in ratio.items()}},
        "speedup_floor": floor,
        "above_floor": {s: speedup[s] >= floor[s] for s in ("dcs", "ecs")},
        # guided-call equivalents (a cond + uncond pair of network rows = 1) per caption; batched
        # runs share the unconditional row of each seed across the batch (attack.scores.base)
        "evals_per_caption": {"dcs": round(db.evals_per_caption, 4), "ecs": round(eb.evals_per_caption, 4),
                              "wen": round(w.evals_per_caption, 4)},
        "evals_per_caption_loop": {"dcs": 1.0, "ecs": float(len(ep.seeds))},
        "network_rows_per_s_dcs_batched": round(2 * med["dcs_batched"] * db.evals_per_caption, 2),
        "max_abs_diff_batched_vs_loop": {
            "dcs": float((db.values[:len(loop_caps)] - outs["dcs_loop"]).abs().max()),
            "ecs": float((eb.values[:len(loop_caps)] - outs["ecs_loop"]).abs().max())},
        "machine": meter.report(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack.bench.throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo", help="model spec (default demo; sd-random for an SD-1.5-sized UNet)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="auto | float32 | float16 | bfloat16 (CUDA only for half)")
    ap.add_argument("--captions", type=int, default=64, help="captions scored batched")
    ap.add_argument("--loop-captions", type=int, default=16, help="captions scored one at a time")
    ap.add_argument("--batch-size", type=int, default=128,
                    help="network rows per call: captions per DCS batch, captions x J per ECS batch")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0 = torch's default); on a CPU shared with another busy process, 1 "
                         "avoids OpenMP threads waiting on each other")
    ap.add_argument("--rounds", "--repeat", type=int, default=5,
                    help="interleaved rounds: each path is timed once per round (default 5); figures are medians")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    a = ap.parse_args(argv)
    keep_freed_memory()    # as the command line does (attack.runtime)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    from attack.errors import AttackError

    try:
        out = run(a.model, a.device, a.dtype, a.captions, min(a.loop_captions, a.captions), a.batch_size,
                  max(1, a.rounds))
    except AttackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not a.json:
        for k, v in out.items():
            print(f"{k:>32}: {v}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
