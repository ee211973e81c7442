"""Edge Consistency Score, Webster 2023 eq. 3: fraction of pixels whose Sobel edge recurs over J one-step generations.

Edge convention (the paper's public code, utils/processing_utils.py, get_edge_img /
get_edge_intersection_score): each generation is resized to 256x256 with Lanczos from its 8-bit
RGB image and scaled to [0, 1]; the gradient along each spatial axis is scipy.ndimage.sobel on
the H x W x 3 array, i.e. the unnormalised [-1, 0, 1] derivative along that axis and the
[1, 2, 1] smoothing along *both* other axes, the channel axis included, with 'reflect' borders
(which, for a 3-tap kernel, repeats the edge sample); the per-channel magnitude hypot(gx, gy) is
summed over the 3 channels and thresholded (> 1.5); the J binary maps are averaged and
thresholded (> 0.5, so 3 of 4 for J=4); ECS is the fraction of pixels set.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attack.images.metrics import resize_u8, u8_to_float
from attack.models.base import TextToImageModel
from attack.sampling import karras_sigmas, sample_heun
from attack.scores.base import ScoreInputError, ScoreResult, check_batch_size, check_captions, chunks


@dataclass(frozen=True)
class ECSParams:
    """seeds: the J generations per caption (the same seeds for every caption, as the public
    code); steps: sampler steps of each generation (T=1 in the paper); guidance: CFG scale;
    edge_threshold: on the channel-summed Sobel magnitude; vote: on the mean of the J edge maps;
    size: comparison size (256, Lanczos)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    steps: int = 1
    guidance: float = 7.5
    edge_threshold: float = 1.5
    vote: float = 0.5
    size: int = 256


def _smooth(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[1, 2, 1] along dim (valid part: the dim shrinks by 2)."""
    n = t.shape[dim]
    return torch.add(t.narrow(dim, 0, n - 2) + t.narrow(dim, 2, n - 2), t.narrow(dim, 1, n - 2), alpha=2)


def _derive(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[-1, 0, 1] along dim (valid part)."""
    n = t.shape[dim]
    return t.narrow(dim, 2, n - 2) - t.narrow(dim, 0, n - 2)


# Images per pass: two 256x256x3 images' temporaries stay in cache; whole batches made every
# elementwise pass a trip to memory (2 measured faster than 1, 4 or 8 on a 2-core machine).
_SOBEL_CHUNK = 2


def _sobel_chunk(chunk: torch.Tensor) -> torch.Tensor:
    """[n,C,H,W] float32 -> [n,H,W]: see sobel_magnitude."""
    p = F.pad(chunk[:, None], (1, 1, 1, 1, 1, 1), mode="replicate")[:, 0]  # [n,C+2,H+2,W+2]
    q = _smooth(p, 1)  # channels
    g_h = _smooth(_derive(q, 2), 3)
    g_w = _smooth(_derive(q, 3), 2)
    return torch.hypot(g_h, g_w).sum(1)


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] -> [N,H,W]: sum over channels of hypot(sobel_H, sobel_W), as scipy.ndimage.sobel
    computes them on an H x W x 3 array: the derivative [-1, 0, 1] along one spatial axis and
    [1, 2, 1] smoothing along the other spatial axis *and the channel axis*, 'reflect' borders
    (for a 3-tap kernel that repeats the edge sample, so the tensor is edge-padded on all three
    axes). Separable passes with the channel smoothing shared by both gradients, in float32:
    equal to scipy's up to float32 rounding (~1e-5)."""
    if images.ndim != 4:
        raise ScoreInputError(f"expected images [N,C,H,W], got shape {tuple(images.shape)}")
    if not len(images):
        return images.new_zeros((0, *images.shape[2:]), dtype=torch.float32)
    return torch.cat([_sobel_chunk(c.float()) for c in images.split(_SOBEL_CHUNK)])


def edge_maps(images: torch.Tensor, threshold: float = 1.5) -> torch.Tensor:
    """Binary edge maps [N,H,W] (bool) of images [N,3,H,W] in [0, 1]."""
    return sobel_magnitude(images) > threshold


def edge_maps_u8(images: torch.Tensor, threshold: float = 1.5) -> torch.Tensor:
    """edge_maps of 8-bit images [N,H,W,3] (uint8), each scaled to [0, 1] as the public code
    does (x / 255 in float32) inside the cache-sized chunk rather than in a pass over the batch."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
        raise ScoreInputError(f"expected uint8 images [N,H,W,3], got {images.dtype} {tuple(images.shape)}")
    if not len(images):
        return torch.zeros(images.shape[:3], dtype=torch.bool)
    return torch.cat([_sobel_chunk(u8_to_float(c)) > threshold for c in images.split(_SOBEL_CHUNK)])


def ecs_from_images(images: torch.Tensor, params: ECSParams = ECSParams(),
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Blackbox ECS of already generated images [B,J,3,H,W] in [0, 1] -> float32 [B] (CPU);
    the edge filtering runs on `device` (default CPU), e.g. the GPU the generations came from."""
    if images.ndim != 5 or images.shape[2] != 3:
        raise ScoreInputError(f"expected generations [B,J,3,H,W], got shape {tuple(images.shape)}")
    b, j = images.shape[:2]
    if b == 0 or j == 0:
        raise ScoreInputError(f"expected at least one caption and one generation, got shape {tuple(images.shape)}")
    small = torch.from_numpy(resize_u8(images.flatten(0, 1), params.size))  # 8-bit, Lanczos: the public code's PIL path
    if device is not None:
        small = small.to(device)
    maps = edge_maps_u8(small, params.edge_threshold).view(b, j, params.size, params.size)
    consistent = maps.float().mean(1) > params.vote
    return consistent.flatten(1).float().mean(1).cpu()


def one_step_generations(model: TextToImageModel, captions: Sequence[str], seeds: Sequence[int],
                         guidance: float = 7.5) -> torch.Tensor:
    """Gen(c, r, T=1) for every caption x seed: [B*J,3,H,W] in [0,1], caption-major. Same images
    as model.sample(..., steps=1), with the unconditional rows shared per seed and each caption
    encoded once."""
    caps = [c for c in captions for _ in seeds]
    rows = [int(s) for _ in captions for s in seeds]
    sigmas = karras_sigmas(1, model.sigma_min, model.sigma_max)
    x = model.noise(caps, rows) * float(sigmas[0])
    cond = model.encode(list(captions)).repeat_interleave(len(seeds), 0)
    x0 = sample_heun(model.shared_denoiser(rows, cond, guidance), x, sigmas)
    return model.decode(x0).float().cpu()


def _ecs_held_seeds(model: TextToImageModel, captions: Sequence[str], params: ECSParams) -> ScoreResult:
    """ECS of a closed model over the seeds it holds for each caption (J may differ)."""
    values = torch.empty(len(captions), dtype=torch.float32)
    for i, c in enumerate(captions):
        seeds = model.seeds_for(c, params.steps)
        if not seeds:
            raise ScoreInputError(f"expected images of {c!r} at steps={params.steps} in {model.spec or model.name} "
                                  f"for ECS, got {'none' if seeds is not None else 'a model that holds no images'} "
                                  f"(ECS needs one-step images; without them, generate every caption the model has "
                                  f"images for with `generate --by none`)")
        images = model.sample([c] * len(seeds), seeds, steps=params.steps, guidance=params.guidance).images
        values[i] = ecs_from_images(images[None], params, model.device)[0]
    return ScoreResult("ecs", values, 0.0, params)


def ecs(model: TextToImageModel, captions: Sequence[str], params: ECSParams = ECSParams(),
        *, batch_size: int = 8) -> ScoreResult:
    """Webster 2023 eq. 3 (ECS) with J one-step generations per caption, batch_size captions
    (batch_size * J generations) per network call. seeds=() (a closed model): each caption's
    own seeds, the ones its images: mapping holds at `steps`."""
    captions = check_captions(captions)
    batch_size = check_batch_size(batch_size)
    if not params.seeds:
        return _ecs_held_seeds(model, captions, params)
    seeds, j = tuple(int(s) for s in params.seeds), len(params.seeds)
    values = torch.empty(len(captions), dtype=torch.float32)
    start = model.evals
    for sl in chunks(len(captions), batch_size):
        caps = captions[sl]
        if params.steps == 1 and model.whitebox:
            images = one_step_generations(model, caps, seeds, params.guidance)
        else:  # more steps, or stored images of a closed model
            images = model.sample([c for c in caps for _ in seeds], [s for _ in caps for s in seeds],
                                  steps=params.steps, guidance=params.guidance).images
        values[sl] = ecs_from_images(images.view(len(caps), j, *images.shape[1:]), params, model.device)
    return ScoreResult("ecs", values, (model.evals - start) / len(captions), params)
