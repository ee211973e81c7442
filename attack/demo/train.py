"""Train the demo model on the demo world: `python -m attack.demo.train [--minutes M] [--out DIR]`.

Seeded and CPU-friendly (2 cores). Rows are sampled uniformly, so a picture duplicated 200
times is seen 200 times as often as a unique one, as in LAION. Captions are dropped 10% of
the time so classifier-free guidance works as in Stable Diffusion. Noise levels mix SD's
uniform-timestep training (which covers sigma_max, where the one-step attack looks) with EDM's
log-normal (which gives clean samples at low noise).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from attack.demo.net import WEIGHTS_DIR, DemoConfig, DemoNet
from attack.demo.text import WordTokenizer
from attack.demo.world import build_world
from store.command import run_command
from store.outputs import check_output


def train(minutes: float, out: Path, seed: int = 0, batch_size: int = 64, lr: float = 5e-4,
          caption_dropout: float = 0.1, save_every_min: float = 10.0, max_steps: int | None = None,
          resume: Path | None = None) -> dict:
    torch.manual_seed(seed)  # training script, not library code: seeding here is the point
    rng = np.random.default_rng(seed)
    world = build_world(seed)
    captions = [r.caption for r in world.rows]
    cfg = DemoConfig(vocab=tuple(WordTokenizer.from_captions(captions).vocab))
    net = DemoNet(cfg)
    prior = {"steps": 0, "train_minutes": 0.0, "log": []}
    if resume is not None:
        # Continue from saved (EMA, float16) weights with a fresh optimizer; steps and minutes add up.
        loaded = DemoNet.load(resume)
        if loaded.cfg != cfg:
            raise ValueError(f"expected {resume} to hold a model for this demo world, got another config")
        net.load_state_dict(loaded.state_dict())
        net.requires_grad_(True).train()
        prior = json.loads((resume / "train_log.json").read_text(encoding="utf-8"))
        rng = np.random.default_rng([seed, prior["steps"]])
    images = torch.from_numpy(np.stack(world.images)).permute(0, 3, 1, 2).float() / 255.0
    latents = net.fold(images)
    row_image = torch.tensor([r.image_index for r in world.rows])
    row_ids = net.tokenizer(captions)
    empty_ids = net.tokenizer([""])
    ema = copy.deepcopy(net).requires_grad_(False)
    params = list(net.text.parameters()) + list(net.unet.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sd = cfg.sigma_data
    smin, smax = float(net.sigmas[0]), float(net.sigmas[-1])
    start = time.time() - 60 * prior["train_minutes"]
    last_save = time.time()
    log: list[dict] = list(prior["log"])
    step, run_loss = prior["steps"], 0.0
    print(f"demo world: {len(world.rows)} rows, {len(world.images)} images; "
          f"model {sum(p.numel() for p in params) / 1e6:.2f}M params", flush=True)
    while True:
        elapsed = (time.time() - start) / 60 - prior["train_minutes"]
        if elapsed >= minutes or (max_steps is not None and step >= max_steps):
            break
        idx = torch.from_numpy(rng.integers(0, len(world.rows), batch_size))
        x0 = latents[row_image[idx]]
        ids = row_ids[idx].clone()
        drop = torch.from_numpy(rng.random(batch_size) < caption_dropout)
        ids[drop] = empty_ids
        # half SD-style uniform timesteps, half EDM log-normal, clamped to SD's sigma range
        u = torch.from_numpy(rng.integers(0, len(net.sigmas), batch_size))
        ln = torch.from_numpy(rng.normal(-1.2, 1.2, batch_size)).float().exp().clamp(smin, smax)
        sigma = torch.where(torch.arange(batch_size) % 2 == 0, net.sigmas[u], ln)
        noise = torch.randn_like(x0)
        x = x0 + sigma.view(-1, 1, 1, 1) * noise
        cond = net.text(ids)
        d = net.denoise(x, sigma, cond)
        w = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
        loss = (w.view(-1, 1, 1, 1) * (d - x0) ** 2).mean()
        warm = min(1.0, (step - prior["steps"] + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = lr * warm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step - prior["steps"]) / (10 + step - prior["steps"]))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1 - decay)
        step += 1
        run_loss += loss.item()
        if step % 50 == 0:
            entry = {"step": step, "minutes": round((time.time() - start) / 60, 2), "loss": round(run_loss / 50, 5)}
            log.append(entry)
            run_loss = 0.0
            print(json.dumps(entry), flush=True)
        if (time.time() - last_save) / 60 >= save_every_min:
            _save(ema, out, world, step, start, log, seed, batch_size)
            last_save = time.time()
    return _save(ema, out, world, step, start, log, seed, batch_size)


OUTPUT_FILES = ("config.json", "model.safetensors", "train_log.json")


def _save(ema: DemoNet, out: Path, world, step: int, start: float, log: list, seed: int, batch_size: int) -> dict:
    ema.save(out)
    info = {"steps": step, "batch_size": batch_size, "seed": seed,
            "train_minutes": round((time.time() - start) / 60, 2),
            "world_fingerprint": world.fingerprint(), "rows": len(world.rows), "log": log}
    (out / "train_log.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack.demo.train", description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=90.0, help="wall-clock training budget")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    ap.add_argument("--resume", type=Path, default=None, help="continue from the weights and log in this folder")
    ap.add_argument("--force", action="store_true", help="replace weights already in --out (the default --out "
                                                          "holds the committed demo weights)")
    a = ap.parse_args(argv)
    return run_command(lambda: _main(a), interrupted=f"the last weights saved in {a.out} are kept")


def _main(a: argparse.Namespace) -> int:
    # the output rules of every command (store/outputs.py): not in a store, not over files without --force
    same = a.resume is not None and a.resume.resolve() == a.out.resolve()
    for name in OUTPUT_FILES:
        check_output(a.out / name, force=a.force or same, make_parents=True)
    if a.threads:
        torch.set_num_threads(a.threads)
    # Adam's moments and the EMA drift into subnormal floats, which made CPU steps many times slower.
    torch.set_flush_denormal(True)
    info = train(a.minutes, a.out, a.seed, a.batch_size, a.lr, max_steps=a.max_steps, resume=a.resume)
    print(json.dumps({k: v for k, v in info.items() if k != "log"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
