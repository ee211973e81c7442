"""Inference-time mitigations as models: `INNER+mitigate:cfg=3 | rta=4 | wen[=...]`.

A mitigation wraps any whitebox adapter (`MitigatedModel`), so a mitigated model is a different
model for runs (its fingerprint is the inner model's identity plus the mitigation and its
parameters) and every score and generation of it sees the mitigation. Comparing a model with its
mitigated self on the same captions ("before and after") is then two ordinary runs.
- `cfg=G` (GuidanceMitigation): classifier-free guidance at scale G, whatever a stage asks for.
- `rta=N` (RandomTokens): Somepalli et al. (NeurIPS 2023)'s random token addition: N random words
  inserted at random positions of the caption before it is encoded.
- `wen` / `wen=target:3,lr:0.05,steps:10,noises:4` (WenAdjustment): Wen et al. (ICLR 2024)'s
  inference-time mitigation: a few AdamW steps on the prompt embedding that shrink the norm of the
  text-conditional noise prediction at the first sampling step.

The empty caption (the unconditional input) is never changed. Mitigations stack:
`demo+mitigate:rta=4+mitigate:cfg=3` applies rta inside, cfg outside.
"""
from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch

from attack.models.base import ModelError, Samples, TextToImageModel

SUFFIX = "+mitigate:"
FORMS = ("cfg=<guidance> (e.g. cfg=3), rta=<words> (e.g. rta=4), wen, or "
         "wen=<key:value,...> with keys target, lr, steps, noises (e.g. wen=target:3,lr:0.05,steps:10,noises:4)")
ALGORITHM = 1  # bump when a mitigation's computation changes: it is part of every mitigated model's identity


class MitigationError(ModelError):
    """A `+mitigate:` suffix that does not parse, or a mitigation a model cannot take."""


def _num(x: float) -> str:
    """A float as the shortest text that parses back to it (3.0 -> '3', 0.05 -> '0.05')."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True)
class Mitigation:
    """Base of the mitigation parameter sets; `kind` names it in specs and fingerprints."""
    kind: ClassVar[str] = ""

    def text(self) -> str:
        """The canonical suffix text (what follows '+mitigate:')."""
        raise NotImplementedError


@dataclass(frozen=True)
class GuidanceMitigation(Mitigation):
    """Ho & Salimans 2022 (Classifier-Free Diffusion Guidance) eq. 6, fixed scale: D_u + g (D_c - D_u), g = 1 + w."""
    guidance: float
    kind: ClassVar[str] = "cfg"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.guidance) and self.guidance >= 0):
            raise MitigationError(f"expected cfg=<guidance> with a finite guidance >= 0, got cfg={self.guidance!r}")
        object.__setattr__(self, "guidance", float(self.guidance))

    def text(self) -> str:
        return f"cfg={_num(self.guidance)}"


@dataclass(frozen=True)
class RandomTokens(Mitigation):
    """Somepalli et al. NeurIPS 2023, random token addition: c' = c with `count` random words at random places."""
    count: int = 4
    kind: ClassVar[str] = "rta"

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise MitigationError(f"expected rta=<words> with an integer >= 1, got rta={self.count!r}")

    def text(self) -> str:
        return f"rta={self.count}"


@dataclass(frozen=True)
class WenAdjustment(Mitigation):
    """Wen et al. ICLR 2024 mitigation: e* = AdamW steps on ||eps(x_T, e) - eps(x_T, e_empty)||_2 from e = encode(c).

    Defaults are the published settings of their code (github.com/YuxinWenRick/diffusion_memorization):
    target 3 (README's mitigation command `--optim_target_loss 3`, and examples/inference_time_mitigation.ipynb),
    lr 0.05 (inference_mem.py `--optim_lr` default, and the notebook), steps 10 (inference_mem.py
    `--optim_iters` default), noises 4 (inference_mem.py `--num_images_per_prompt` default: the loss is
    the norm over that many generations' starting noise at once), at the first sampling step
    (`--optim_target_steps 0`)."""
    target: float = 3.0
    lr: float = 0.05
    steps: int = 10
    noises: int = 4
    kind: ClassVar[str] = "wen"

    def __post_init__(self) -> None:
        for name, ok, want in (("target", math.isfinite(self.target) and self.target >= 0, "a finite number >= 0"),
                               ("lr", math.isfinite(self.lr) and self.lr > 0, "a finite number > 0")):
            if not ok:
                raise MitigationError(f"expected wen {name}:<{want}>, got {name}:{getattr(self, name)!r}")
        for name in ("steps", "noises"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MitigationError(f"expected wen {name}:<an integer >= 1>, got {name}:{v!r}")
        object.__setattr__(self, "target", float(self.target))
        object.__setattr__(self, "lr", float(self.lr))

    def text(self) -> str:
        default = WenAdjustment()
        changed = [f"{f.name}:{_num(v) if isinstance(v, float) else v}" for f in fields(self)
                   if (v := getattr(self, f.name)) != getattr(default, f.name)]
        return "wen=" + ",".join(changed) if changed else "wen"


MITIGATIONS: dict[str, type[Mitigation]] = {m.kind: m for m in (GuidanceMitigation, RandomTokens, WenAdjustment)}


def _fail(text: str, spec: str | None, why: str) -> MitigationError:
    where = f" in model spec {spec!r}" if spec is not None else ""
    return MitigationError(f"expected a mitigation {FORMS}; got {text!r}{where}: {why}")


def _number(text: str, spec: str | None, key: str, value: str, integer: bool) -> float | int:
    try:
        if integer:
            if not value.strip().lstrip("+").isdigit():
                raise ValueError
            return int(value)
        return float(value)
    except ValueError:
        want = "an integer" if integer else "a number"
        raise _fail(text, spec, f"{key} needs {want}, got {value!r}") from None


def parse_mitigation(text: str, spec: str | None = None) -> Mitigation:
    """`cfg=3` -> GuidanceMitigation(3.0), `rta=4` -> RandomTokens(4), `wen` -> WenAdjustment(),
    `wen=target:2,steps:5` -> WenAdjustment(target=2.0, steps=5); anything else raises
    MitigationError naming the input (and the spec it came from) and the valid forms."""
    name, sep, arg = text.partition("=")
    if not text:
        raise _fail(text, spec, f"nothing follows {SUFFIX!r}")
    if name not in MITIGATIONS:
        raise _fail(text, spec, f"unknown mitigation {name!r} (known: {', '.join(MITIGATIONS)})")
    try:
        if name == "cfg":
            if not sep:
                raise _fail(text, spec, "cfg needs a guidance scale, e.g. cfg=3")
            return GuidanceMitigation(_number(text, spec, "cfg", arg, False))
        if name == "rta":
            if not sep:
                raise _fail(text, spec, "rta needs a word count, e.g. rta=4")
            return RandomTokens(_number(text, spec, "rta", arg, True))
        if not sep:
            return WenAdjustment()
        kinds = {f.name: f.type for f in fields(WenAdjustment)}
        values: dict[str, Any] = {}
        for item in arg.split(","):
            key, colon, value = item.partition(":")
            if key not in kinds or not colon:
                raise _fail(text, spec, f"wen takes key:value items with keys {', '.join(kinds)}, got {item!r}")
            if key in values:
                raise _fail(text, spec, f"wen key {key!r} given twice")
            values[key] = _number(text, spec, key, value, kinds[key] == "int")
        return WenAdjustment(**values)
    except MitigationError as e:
        if str(e).startswith("expected a mitigation"):
            raise
        raise _fail(text, spec, str(e)) from None


def canonical_text(text: str) -> str:
    """The canonical form of a suffix (cfg=3.0 -> cfg=3, wen=lr:0.05 -> wen); unchanged if it does not parse."""
    try:
        return parse_mitigation(text).text()
    except MitigationError:
        return text


# --- random token addition. WORDS is used when the inner adapter exposes no `vocabulary()`: common,
# concrete English words (what a caption is made of), each a real token for a CLIP-style tokenizer.
WORDS: tuple[str, ...] = tuple("""
apple arch autumn baby ball banana basket beach bear bell bicycle bird blanket boat book bottle bowl box bread
bridge brick bucket butter butterfly cabin cake camera candle car carpet castle cat chair cheese cherry chess
church circle city clock cloud coat coffee coin corn cottage cow cup curtain desert desk diamond dog door
dragon drum duck eagle egg elephant engine feather fence field fire fish flag flower forest fork fountain fox
frog garden gate glass glove goat gold grape grass guitar hammer harbor hat hill horse house ice island jacket
jar kettle key kite ladder lake lamp leaf lemon letter lion map market mirror moon mountain mouse mushroom
needle nest night ocean orange owl paint palace paper park pearl pencil piano pillow pine planet plate pond
potato rabbit rain river road rock rope rose sail salt sand scarf sea shadow sheep shell ship shoe silver sky
snow sock spoon square stair star stone storm street sugar sun table tea tent tiger tomato tower train tree
truck tulip umbrella valley vase village violin wagon wall watch water wave wheel window wolf wood yellow
zebra
""".split())


def _vocabulary(model: TextToImageModel) -> tuple[tuple[str, ...], str]:
    """(words, source): the adapter's own `vocabulary()` (whole words of its tokenizer) when it has
    one, else the module's WORDS. Words with whitespace, or empty, are dropped."""
    hook = getattr(model, "vocabulary", None)
    if callable(hook):
        words = tuple(sorted({str(w) for w in hook() if str(w) and not any(ch.isspace() for ch in str(w))}))
        if words:
            return words, f"{model.name}.vocabulary()"
    return WORDS, "attack.models.mitigate.WORDS"


def _draw(caption: str, i: int, what: str, n: int) -> int:
    """A uniform integer in [0, n) from SHA-256 of (caption, i, what): the same on every machine,
    library version and batch (a library RNG stream may change across versions)."""
    h = hashlib.sha256(f"rta\0{what}\0{i}\0{caption}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") % n


def add_random_words(caption: str, count: int, words: Sequence[str]) -> str:
    """Somepalli et al.'s random token addition (their code: somepago/DCR sd_mitigation.py
    prompt_augmentation('rand_word_add') with datasets.insert_rand_word, repeated
    `--rand_aug_repeats` times): `count` times, split the caption on ' ', insert a random word at a
    random one of the len+1 places, join with ' '. Randomness is a hash of the caption (see _draw),
    so a caption always gets the same words at the same places. The empty caption is kept."""
    if not caption:
        return caption
    out = caption
    for i in range(count):
        parts = out.split(" ")
        parts.insert(_draw(caption, i, "place", len(parts) + 1), words[_draw(caption, i, "word", len(words))])
        out = " ".join(parts)
    return out


# --- the wrapper; AdamW as Wen et al. construct it (torch.optim.AdamW([embedding], lr=lr): torch defaults otherwise)
ADAMW = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


@dataclass(frozen=True)
class WenTrace:
    """What the embedding adjustment of one caption did: the loss ||eps_c - eps_u||_2 at each
    evaluation (the last one either under the target or before the final, unevaluated step) and
    the AdamW steps taken."""
    losses: tuple[float, ...]
    steps: int


class MitigatedModel(TextToImageModel):
    """Any whitebox adapter with an inference-time mitigation. It delegates the model surface (shape,
    sigmas, device, dtype, noise, decode, network calls, seeds_for, sampler, steps_held) and changes:
    - cfg: the guidance of `denoise`, `shared_denoiser` and `sample`, so scores (DCS, ECS) and
      generations of the mitigated model all run at the mitigation's scale whatever a stage passes
      (`guidance_for(g)` says which scale a call asking for g runs at);
    - rta: `encode(c)` is the inner `encode(augmented(c))`;  wen: the adjusted embedding (`adjust`).
    The empty caption (`uncond`) is never mitigated. `evals` is the inner model's count plus this
    wrapper's own (the wen adjustment), in guided-pair units. `sample` is the base Heun sampler on
    this wrapper's encode / denoise (only closed models override it, and they are refused)."""

    cache_size = 1024   # adjusted embeddings kept (wen), by caption: a run's score and generate stages share them
    adjust_rows = 16    # conditional rows per differentiable network call of the wen adjustment (memory bound)

    def __init__(self, inner: TextToImageModel, mitigation: Mitigation):
        super().__init__()
        if not inner.whitebox:
            raise MitigationError(f"expected a whitebox model for {SUFFIX}{mitigation.text()}, got "
                                  f"{inner.spec or inner.name}: a model known only by its images has no network to "
                                  f"change (mitigate the model that made them, or import its mitigated images)")
        if not isinstance(mitigation, tuple(MITIGATIONS.values())):
            raise MitigationError(f"expected one of {', '.join(m.__name__ for m in MITIGATIONS.values())}, "
                                  f"got {type(mitigation).__name__}")
        self.inner = inner
        self.mitigation = mitigation
        self.name = f"{inner.name}{SUFFIX}{mitigation.text()}"
        self.spec = f"{inner.spec}{SUFFIX}{mitigation.text()}" if inner.spec else ""
        self._words: tuple[str, ...] = ()
        self._word_source = ""
        if isinstance(mitigation, RandomTokens):
            self._words, self._word_source = _vocabulary(inner)
        self._adjusted: OrderedDict[str, tuple[torch.Tensor, WenTrace]] = OrderedDict()

    # --- identity
    def identity(self, cache: Any = None) -> dict:
        """The inner model's identity, the mitigation, its parameters (and for rta the words it
        draws from): another scale, count or word list is another model."""
        out = {"inner": self.inner.identity(cache), "mitigation": self.mitigation.kind,
               "params": asdict(self.mitigation), "algorithm": ALGORITHM}
        if isinstance(self.mitigation, RandomTokens):
            out["words"] = {"source": self._word_source,
                            "sha256": hashlib.sha256("\n".join(self._words).encode("utf-8")).hexdigest()}
        if isinstance(self.mitigation, WenAdjustment):
            out["optimizer"] = {"name": "AdamW", **ADAMW}
        return out

    def parameter_count(self) -> int:
        return self.inner.parameter_count()

    @property
    def evals(self) -> float:
        """Guided denoiser calls: the inner model's network calls plus this wrapper's own (wen)."""
        return self.inner.evals + self._evals

    # --- delegated surface
    whitebox = property(lambda self: self.inner.whitebox)  # type: ignore[assignment]
    latent_shape = property(lambda self: self.inner.latent_shape)
    sigma_min = property(lambda self: self.inner.sigma_min)
    sigma_max = property(lambda self: self.inner.sigma_max)
    device = property(lambda self: self.inner.device)
    dtype = property(lambda self: self.inner.dtype)
    sampler = property(lambda self: self.inner.sampler)

    def __getattr__(self, name: str) -> Any:
        # only for attributes some adapters have and some not (closed models' steps_held, a tokenizer's vocabulary)
        if name in ("steps_held", "vocabulary") and "inner" in self.__dict__:
            return getattr(self.__dict__["inner"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def seeds_for(self, caption: str, steps: int) -> list[int] | None:
        return self.inner.seeds_for(caption, steps)

    def noise(self, captions: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        return self.inner.noise(captions, seeds)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.inner.decode(latents)

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.inner._denoise(x, sigma, cond)

    def _rows(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.inner._rows(x, sigma, cond)

    def uncond(self, n: int) -> torch.Tensor:
        return self.inner.uncond(n)

    def denoise_pair(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
                     uncond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.denoise_pair(x, sigma, cond, uncond)

    def denoise_pair_shared(self, x: torch.Tensor, sigma: torch.Tensor, seeds: Sequence[int],
                            cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.denoise_pair_shared(x, sigma, seeds, cond)

    # --- guidance (cfg)
    def guidance_for(self, guidance: float) -> float:
        """The guidance scale a call asking for `guidance` runs at (cfg: the mitigation's)."""
        if isinstance(self.mitigation, GuidanceMitigation):
            return self.mitigation.guidance
        inner = getattr(self.inner, "guidance_for", None)
        return inner(guidance) if callable(inner) else guidance

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, guidance: float = 7.5,
                uncond: torch.Tensor | None = None) -> torch.Tensor:
        """The inner guided denoiser D_u + g (D_c - D_u) at g = guidance_for(guidance)."""
        return self.inner.denoise(x, sigma, cond, self.guidance_for(guidance), uncond)

    def shared_denoiser(self, seeds: Sequence[int], cond: torch.Tensor,
                        guidance: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return self.inner.shared_denoiser(seeds, cond, self.guidance_for(guidance))

    def sample(self, captions: Sequence[str], seeds: Sequence[int], steps: int = 16,
               guidance: float = 7.5, decode: bool = True) -> Samples:
        """The base Heun sampler on this model's encode and denoise; Samples.guidance is the scale used."""
        return super().sample(captions, seeds, steps=steps, guidance=self.guidance_for(guidance), decode=decode)

    # --- text (rta, wen)
    def augmented(self, caption: str) -> str:
        """The caption the inner model encodes: with rta its random words added, else itself."""
        if isinstance(self.mitigation, RandomTokens):
            return add_random_words(caption, self.mitigation.count, self._words)
        return caption

    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        captions = list(captions)
        if isinstance(self.mitigation, RandomTokens):
            return self.inner.encode([self.augmented(c) for c in captions])
        if isinstance(self.mitigation, WenAdjustment):
            return self.adjust(captions)
        return self.inner.encode(captions)

    def trace(self, caption: str) -> WenTrace | None:
        """The wen adjustment's record for a caption this process adjusted (None: not adjusted or evicted)."""
        hit = self._adjusted.get(caption)
        return hit[1] if hit is not None else None

    def adjust(self, captions: Sequence[str]) -> torch.Tensor:
        """Wen et al.'s adjusted embeddings [B, ...] in the model's dtype (see _adjust_batch);
        the empty caption keeps its embedding; results are cached per caption (LRU)."""
        captions = list(captions)
        todo = list(dict.fromkeys(c for c in captions if c and c not in self._adjusted))
        per_call = max(1, self.adjust_rows // self.mitigation.noises)
        for i in range(0, len(todo), per_call):
            chunk = todo[i:i + per_call]
            for c, e, tr in zip(chunk, *self._adjust_batch(chunk)):
                self._adjusted[c] = (e, tr)
        out = []
        empty = None
        for c in captions:
            if not c:
                empty = self.inner.encode([""])[0] if empty is None else empty
                out.append(empty)
                continue
            self._adjusted.move_to_end(c)
            out.append(self._adjusted[c][0])
        while len(self._adjusted) > self.cache_size:
            self._adjusted.popitem(last=False)
        if not out:
            return self.inner.encode([])
        return torch.stack(out).to(self.device, self.dtype)

    def _adjust_batch(self, captions: list[str]) -> tuple[list[torch.Tensor], list[WenTrace]]:
        """Wen et al. ICLR 2024, inference-time mitigation: minimise L(e) = ||eps(x_T, e) - eps(x_T, e_empty)||_2
        over the prompt embedding e, from e = encode(c), with AdamW.

        As their code does (local_sd_pipeline.py, LocalStableDiffusionPipeline.aug_prompt, called
        from inference_mem.py main): L is the plain L2 norm of the whole difference over the
        `noises` generations at once (not squared, not a mean); each iteration evaluates L, stops
        if L <= target, else takes one AdamW step (torch defaults: betas (0.9, 0.999), eps 1e-8,
        weight decay 0.01) with the gradient of the first token (the start token) zeroed; at most
        `steps` iterations (so the last step is not evaluated); the unconditional embedding is
        unchanged. Captions of a batch are optimised together but independently: AdamW acts
        elementwise and a caption that reached the target takes no further steps.

        Differences, and why: eps = (x - D(x; sigma, e)) / sigma from the Karras denoiser at sigma_max,
        x_T = sigma_max * noise(seed) for seeds 0..noises-1 (Wen et al.: DDIM's first timestep, t=981
        of 50, on the latents of the generations about to be made). Fixed seeds keep `encode` a
        function of the caption: scores and generations see one embedding, runs resume exactly, the
        result is cached; with noises=4 they are the generate stage's default seeds 0..3 (and the
        DCS / Wen scores' seed 0), i.e. Wen et al.'s setting for those generations. The embedding is
        optimised in float32 (they used bfloat16 throughout).

        Cost, added to `evals` in guided-pair units (one network row is 1/2): the unconditional rows
        once (noises/2); per iteration, the forward of the rows of the captions still optimising
        (noises/2 each) and, when any of them steps, as much again for the backward to the embedding
        (weights frozen, so no weight gradients: about one forward's work). One caption reaching the
        target after k steps: noises/2 + k*noises + noises/2; never reaching it: noises/2 + steps*noises."""
        m: WenAdjustment = self.mitigation  # type: ignore[assignment]
        inner, n, k = self.inner, m.noises, len(captions)
        sig = float(self.sigma_max)
        dev, dtype = self.device, self.dtype
        x = (inner.noise([""] * n, list(range(n))) * sig).to(dev, dtype)
        s_rows = torch.full((n,), sig, device=dev, dtype=torch.float32)
        du = inner._rows(x, s_rows, inner.uncond(n))                       # [n, ...] float32
        self._evals += n / 2
        e = inner.encode(captions).detach().to(dev, torch.float32).clone()
        exp_avg, exp_avg_sq = torch.zeros_like(e), torch.zeros_like(e)
        active = list(range(k))
        losses: list[list[float]] = [[] for _ in range(k)]
        taken = [0] * k
        b1, b2 = ADAMW["betas"]
        for j in range(m.steps):
            if not active:
                break
            rows = len(active) * n
            with torch.enable_grad():
                leaf = e[active].clone().requires_grad_(True)
                cond = leaf.repeat_interleave(n, dim=0)
                dc = inner._denoise(x.repeat(len(active), *([1] * (x.dim() - 1))),
                                    s_rows.repeat(len(active)), cond.to(dtype)).float()
                diff = (du.repeat(len(active), *([1] * (du.dim() - 1))) - dc) / sig   # eps_c - eps_u
                loss = diff.reshape(len(active), -1).norm(dim=1)
            self._evals += rows / 2
            values = loss.detach().cpu().tolist()
            for a, v in zip(active, values):
                losses[a].append(float(v))
            keep = [i for i, v in enumerate(values) if not v <= m.target]
            if not keep:
                break
            (grad,) = torch.autograd.grad(loss[keep].sum(), [leaf])
            self._evals += rows / 2
            idx = torch.tensor([active[i] for i in keep], device=e.device)
            g = grad[keep]
            if g.dim() >= 3:         # [B, tokens, dim]: the start token stays (their code zeroes its gradient)
                g[:, 0] = 0
            t = j + 1                # every caption still optimising has stepped j times before
            p, mo, ve = e[idx], exp_avg[idx], exp_avg_sq[idx]
            p = p * (1 - m.lr * ADAMW["weight_decay"])
            mo = mo.lerp(g, 1 - b1)
            ve = ve * b2 + (1 - b2) * g * g
            denom = ve.sqrt() / math.sqrt(1 - b2 ** t) + ADAMW["eps"]
            p = p - (m.lr / (1 - b1 ** t)) * mo / denom
            e[idx], exp_avg[idx], exp_avg_sq[idx] = p, mo, ve
            for i in keep:
                taken[active[i]] += 1
            active = [active[i] for i in keep]
        emb = e.to(dtype)
        return list(emb), [WenTrace(tuple(ls), st) for ls, st in zip(losses, taken)]


__all__ = ["ADAMW", "FORMS", "GuidanceMitigation", "MITIGATIONS", "MitigatedModel", "Mitigation", "MitigationError",
           "RandomTokens", "SUFFIX", "WORDS", "WenAdjustment", "WenTrace", "add_random_words", "canonical_text",
           "parse_mitigation"]
