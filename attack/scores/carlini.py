"""Carlini et al. (USENIX Security 2023) post-filter: a caption is flagged when its N generations hold a clique of >= 10 near-copies under the tiled l2 distance.

Tiled l2 (their section 4.2): images split into 4x4 non-overlapping tiles, the distance of two
images is the largest per-tile RMSE. Carlini et al. compared 512x512 SD outputs (128-pixel
tiles); here, as every comparison in Verbatim, images are 256x256 RGB in [0, 1] after a Lanczos
resize (64-pixel tiles) - `size` changes that. Two generations are connected when their distance
is below 0.15; the score is the size of the largest clique (exact, networkx's Bron-Kerbosch).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import torch

from attack.images.metrics import to_compare
from attack.models.base import TextToImageModel
from attack.scores.base import ScoreInputError, check_captions


@dataclass(frozen=True)
class CarliniParams:
    """n generations per caption (seeds first_seed..first_seed+n-1, full sampling of `steps`
    Heun steps with guidance), tiles per side, edge threshold on the tiled RMSE, clique size
    that flags a caption, comparison size."""
    n: int = 500
    steps: int = 16
    guidance: float = 7.5
    first_seed: int = 0
    tiles: int = 4
    threshold: float = 0.15
    min_clique: int = 10
    size: int = 256


@dataclass(frozen=True)
class CliqueResult:
    """Largest clique of near-copies among one caption's generations."""
    size: int
    members: tuple[int, ...]  # generation indices, ascending
    flagged: bool


@dataclass(frozen=True)
class CarliniResult:
    """Per caption (caption order): largest clique size (float32 [B]), flag, members."""
    name: str
    values: torch.Tensor
    flagged: torch.Tensor  # bool [B]
    cliques: tuple[tuple[int, ...], ...]
    evals_per_caption: float
    params: CarliniParams


def tiled_rmse(images: torch.Tensor, tiles: int = 4) -> torch.Tensor:
    """[N,C,S,S] -> [N,N]: max over the tiles x tiles grid of the per-tile RMSE between every pair."""
    if images.ndim != 4:
        raise ScoreInputError(f"expected images [N,C,H,W], got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    if h % tiles or w % tiles:
        raise ScoreInputError(f"expected a size divisible by {tiles} tiles, got {h}x{w}")
    th, tw = h // tiles, w // tiles
    # [tiles*tiles, N, C*th*tw]; float64 keeps |a|^2 + |b|^2 - 2ab exact enough near 0.
    t = images.double().reshape(n, c, tiles, th, tiles, tw).permute(2, 4, 0, 1, 3, 5).reshape(tiles * tiles, n, -1)
    sq = t.pow(2).sum(-1)
    d2 = (sq[:, :, None] + sq[:, None, :] - 2 * t @ t.transpose(1, 2)).clamp_min(0) / t.shape[-1]
    out = d2.amax(0).sqrt().float()
    out.fill_diagonal_(0)
    return out


def largest_clique(adjacency: torch.Tensor) -> tuple[int, ...]:
    """Members of a maximum clique of a symmetric boolean adjacency [N,N] (exact)."""
    n = adjacency.shape[0]
    if n == 0:
        return ()
    g = nx.Graph()
    g.add_nodes_from(range(n))
    iu = torch.triu_indices(n, n, 1)
    keep = adjacency[iu[0], iu[1]]
    g.add_edges_from(zip(iu[0][keep].tolist(), iu[1][keep].tolist()))
    best: list[int] = []
    for clique in nx.find_cliques(g):
        if len(clique) > len(best) or (len(clique) == len(best) and sorted(clique) < sorted(best)):
            best = clique
    return tuple(sorted(best))


def carlini_from_images(images: torch.Tensor, params: CarliniParams = CarliniParams()) -> CliqueResult:
    """Post-filter of one caption's generations [N,3,H,W] in [0, 1]."""
    if images.ndim != 4 or images.shape[0] == 0:
        raise ScoreInputError(f"expected generations [N,3,H,W] with N >= 1, got shape {tuple(images.shape)}")
    small = to_compare(images, params.size)
    adj = tiled_rmse(small, params.tiles) < params.threshold
    adj.fill_diagonal_(False)
    members = largest_clique(adj)
    return CliqueResult(len(members), members, len(members) >= params.min_clique)


def carlini(model: TextToImageModel, captions: Sequence[str], params: CarliniParams = CarliniParams(),
            *, batch_size: int = 32) -> CarliniResult:
    """Carlini et al. 2023 post-filter: n full generations per caption, largest near-copy clique."""
    captions = check_captions(captions)
    if params.n < 1 or batch_size < 1:
        raise ScoreInputError(f"expected n >= 1 and batch_size >= 1, got n={params.n}, batch_size={batch_size}")
    seeds = list(range(params.first_seed, params.first_seed + params.n))
    sizes, flags, cliques = [], [], []
    start = model.evals
    for cap in captions:
        gens = [model.sample([cap] * len(seeds[i:i + batch_size]), seeds[i:i + batch_size],
                             steps=params.steps, guidance=params.guidance).images
                for i in range(0, params.n, batch_size)]
        r = carlini_from_images(torch.cat(gens), params)
        sizes.append(r.size)
        flags.append(r.flagged)
        cliques.append(r.members)
    return CarliniResult("carlini", torch.tensor(sizes, dtype=torch.float32), torch.tensor(flags, dtype=torch.bool),
                         tuple(cliques), (model.evals - start) / len(captions), params)
