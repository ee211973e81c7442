"""`python -m attack.bench.throughput --json`: captions per second of DCS and ECS, batched vs a
per-caption loop that does what the paper's public code does (run_wb_attack.py / run_bb_attack.py:
one pipeline call per caption and seed, both prompts encoded per call, a cond + uncond batch of 2,
PIL Lanczos resize and scipy Sobel edges per image), on the same model in the same process. The
scores of both paths are compared (`max_abs_diff_batched_vs_loop`). The last line printed is one
JSON object.

`--model demo` uses the trained demo weights when they exist, else a demo-architecture network
with random weights (speed does not depend on the weights; the JSON says which). `--model
sd-random --device cuda` is a Stable-Diffusion-1.5-sized model with random weights.
"""
from __future__ import annotations

import argparse
import json
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
from attack.sampling import karras_sigmas, sample_heun
from attack.scores.dcs import DCSParams, dcs
from attack.scores.ecs import ECSParams, ecs
from attack.scores.wen import WenParams, wen

ATTACK_LIST = Path(__file__).resolve().parents[1] / "demo" / "attack_list.txt"


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


def _timed(fn: Callable[[], object], device: torch.device, repeat: int = 1) -> tuple[float, object]:
    """Fastest of `repeat` runs (as timeit does: slower runs measure other processes, not us)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def dcs_loop(model: TextToImageModel, captions: Sequence[str], p: DCSParams) -> torch.Tensor:
    """The public code's way (run_wb_attack.py): one pipeline call per caption, which encodes
    the caption and the empty negative prompt, then runs one guided Heun step (a cond + uncond
    batch of 2) from the re-seeded noise; no decode."""
    out = []
    sigmas = karras_sigmas(1, model.sigma_min, model.sigma_max)
    for c in captions:
        cond, unc = model.encode([c]), model.encode([""])
        x_t = model.noise([c], [p.seed]) * float(sigmas[0])
        x_0 = sample_heun(lambda z, s: model.denoise(z, s, cond, p.guidance, unc), x_t, sigmas)
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
    """The public code's way (run_bb_attack.py): per caption, per seed, one batch-1 generation
    (caption and empty caption encoded, one guided step, decoded), the PIL image resized to 256
    with Lanczos, then the scipy edge score of the J images."""
    out = []
    for c in captions:
        group = []
        for s in p.seeds:
            img = model.sample([c], [s], steps=p.steps, guidance=p.guidance).images[0]
            u8 = (img.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            pil = Image.fromarray(u8).resize((p.size, p.size), resample=Image.LANCZOS)
            group.append(np.asarray(pil).astype(np.float32))
        out.append(paper_edge_score(group, p))
    return torch.tensor(out, dtype=torch.float32)


def run(spec: str = "demo", device: str = "cpu", dtype: str | None = None, n_captions: int = 64,
        n_loop: int = 16, batch_size: int = 128, repeat: int = 3) -> dict:
    captions = bench_captions(n_captions)
    loop_caps = captions[:n_loop]
    model, weights = _model(spec, device, dtype, captions)
    dev = model.device
    dp, ep, wp = DCSParams(), ECSParams(), WenParams()
    ecs_batch = max(1, batch_size // len(ep.seeds))
    # warm-up: lazy initialisation, allocator, kernels for both batch shapes
    dcs(model, captions[:2], dp)
    dcs(model, captions[:1], dp, batch_size=1)
    ecs(model, captions[:1], ep)
    t_db, db = _timed(lambda: dcs(model, captions, dp, batch_size=batch_size), dev, repeat)
    t_dl, dl = _timed(lambda: dcs_loop(model, loop_caps, dp), dev, repeat)
    t_eb, eb = _timed(lambda: ecs(model, captions, ep, batch_size=ecs_batch), dev, repeat)
    t_el, el = _timed(lambda: ecs_loop(model, loop_caps, ep), dev, repeat)
    w = wen(model, captions[:2], wp)
    dcs_b, dcs_l = len(captions) / t_db, len(loop_caps) / t_dl
    ecs_b, ecs_l = len(captions) / t_eb, len(loop_caps) / t_el
    return {
        "model": spec, "weights": weights, "device": str(dev), "dtype": str(model.dtype).replace("torch.", ""),
        "captions_batched": len(captions), "captions_loop": len(loop_caps), "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(), "repeat": repeat,
        "dcs_batched_per_s": round(dcs_b, 3), "dcs_loop_per_s": round(dcs_l, 3), "dcs_speedup": round(dcs_b / dcs_l, 2),
        "ecs_batched_per_s": round(ecs_b, 3), "ecs_loop_per_s": round(ecs_l, 3), "ecs_speedup": round(ecs_b / ecs_l, 2),
        # guided-call equivalents (a cond + uncond pair of network rows = 1) per caption; batched
        # runs share the unconditional row of each seed across the batch (attack.scores.base)
        "evals_per_caption": {"dcs": round(db.evals_per_caption, 4), "ecs": round(eb.evals_per_caption, 4),
                              "wen": round(w.evals_per_caption, 4)},
        "evals_per_caption_loop": {"dcs": 1.0, "ecs": float(len(ep.seeds))},
        "network_rows_per_s_dcs_batched": round(2 * dcs_b * db.evals_per_caption, 2),
        "max_abs_diff_batched_vs_loop": {
            "dcs": float((db.values[:len(loop_caps)] - dl).abs().max()),
            "ecs": float((eb.values[:len(loop_caps)] - el).abs().max())},
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
    ap.add_argument("--repeat", type=int, default=3, help="time each path this many times and keep the fastest")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    from attack.errors import AttackError

    try:
        out = run(a.model, a.device, a.dtype, a.captions, min(a.loop_captions, a.captions), a.batch_size,
                  max(1, a.repeat))
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
