"""`sd:<folder | hub id | file>`: Stable Diffusion 1.x / 2.x through diffusers, as a Karras denoiser.

The UNet is wrapped the way k-diffusion's CompVisDenoiser / CompVisVDenoiser wrap it (and so the
paper's public code): sigmas = sqrt((1 - abar) / abar) of the model's own training schedule,
c_in = 1 / sqrt(sigma^2 + 1), the UNet's timestep is the continuous index found by interpolating
log-sigma in that table, and
  epsilon prediction: D(x; sigma) = x - sigma * eps
  v prediction:       D(x; sigma) = x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1).
Nothing is ever downloaded: folders load with local_files_only, hub ids resolve in the local
Hugging Face cache only, and a single checkpoint file needs a local diffusers config.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from attack.models.base import ModelError, TextToImageModel
from attack.models.fingerprint import digest_tree, files_by_name

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """float16 by default on CUDA, float32 on CPU; half precision on CPU is refused (slow, and
    the scores are specified in float32 there)."""
    dev = torch.device(device)
    if dtype is None or dtype == "auto":
        return torch.float16 if dev.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        out = dtype
    elif str(dtype).lower() in _DTYPES:
        out = _DTYPES[str(dtype).lower()]
    else:
        raise ModelError(f"expected --dtype among auto, float32, float16, bfloat16; got {dtype!r}")
    if dev.type == "cpu" and out != torch.float32:
        raise ModelError(f"expected float32 on CPU, got {dtype} (half precision is for --device cuda)")
    return out


def training_sigmas(scheduler_config: dict) -> tuple[torch.Tensor, str]:
    """(sigmas [T] increasing, float32; prediction type) from a diffusers scheduler config.

    Betas come from diffusers' own DDPMScheduler so every beta_schedule it knows (linear,
    scaled_linear, squaredcos_cap_v2, trained_betas) is computed as the model was trained;
    abar stays float32 as in k-diffusion, so SD v1 gives sigma_max = 14.6146."""
    from diffusers import DDPMScheduler

    cfg = {k: v for k, v in dict(scheduler_config).items() if not k.startswith("_")}
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction", "sample"):
        raise ModelError(f"expected prediction_type epsilon, v_prediction or sample, got {pred!r}")
    try:
        sched = DDPMScheduler.from_config(cfg)
    except Exception as e:  # diffusers raises NotImplementedError / ValueError for unknown schedules
        raise ModelError(f"expected a DDPM-style scheduler config, got one diffusers cannot build: {e}") from None
    abar = sched.alphas_cumprod.float()
    if not bool((abar > 0).all()):
        raise ModelError("expected a schedule with abar > 0 at every step, got a zero-terminal-SNR schedule "
                         "(sigma_max would be infinite)")
    return ((1 - abar) / abar).sqrt(), pred


def _place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Frozen, in eval mode, on device; cast only when the dtype differs (loaders already load
    in the requested dtype, and diffusers warns on needless casts)."""
    if next(module.parameters()).dtype != dtype:
        # torch's own cast: diffusers' ModelMixin.to warns about float32-kept modules it has none of
        module = torch.nn.Module.to(module, dtype)
    return torch.nn.Module.to(module, device).eval().requires_grad_(False)


class ClipTokens:
    """A CLIP tokenizer as captions -> ids [B, L], padded to the model's maximum length (so every
    caption's ids, hence its embedding, are independent of the batch)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.max_length = int(tokenizer.model_max_length)

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(captions), padding="max_length", max_length=self.max_length,
                              truncation=True, return_tensors="pt").input_ids


class StableDiffusionModel(TextToImageModel):
    """A diffusers SD UNet + VAE + text encoder seen as D(x; sigma, cond)."""

    name = "sd"

    def __init__(self, unet, vae, text_encoder, tokenize: Callable[[Sequence[str]], torch.Tensor],
                 scheduler_config: dict, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, source: str = "", decode_batch: int = 8,
                 files: dict | None = None):
        super().__init__()
        self._files = files         # the weight / config files it was loaded from, by name (None: in memory)
        self._scheduler_config = {k: v for k, v in dict(scheduler_config).items() if not k.startswith("_")}
        self._device = torch.device(device)
        self._dtype = dtype
        self.unet = _place(unet, self._device, dtype)
        self.vae = _place(vae, self._device, dtype) if vae is not None else None
        self.text_encoder = _place(text_encoder, self._device, dtype)
        self.tokenize = tokenize
        sig, self.prediction_type = training_sigmas(scheduler_config)
        self.sigmas = sig.to(self._device)
        self.log_sigmas = self.sigmas.log()
        self.source = source
        self.decode_batch = int(decode_batch)
        self._empty: torch.Tensor | None = None
        cfg = self.text_encoder.config
        self._use_mask = bool(getattr(cfg, "use_attention_mask", False))

    def identity(self, cache: Any = None) -> dict:
        """The files it was loaded from (every byte, or its parameters when built in memory),
        every component's config, the schedule, prediction type and dtype."""
        configs = {name: (m.config.to_dict() if hasattr(m.config, "to_dict") else dict(m.config))
                   for name, m in (("unet", self.unet), ("vae", self.vae), ("text_encoder", self.text_encoder))
                   if m is not None}
        # library versions are bookkeeping, not the model: an upgrade must not split its runs
        configs = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_") and kk != "transformers_version"}
                   for k, v in configs.items()}
        weights = digest_tree(self._files, cache) if self._files is not None else super().identity()["parameters"]
        return {"name": "sd", "weights": weights, "configs": configs, "scheduler": self._scheduler_config,
                "prediction_type": self.prediction_type, "dtype": str(self._dtype)}

    # --- schedule
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s = self.unet.config.sample_size
        h, w = (s, s) if isinstance(s, int) else tuple(s)
        return (int(self.unet.config.in_channels), int(h), int(w))

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep: linear interpolation of log-sigma between the two neighbouring
        training sigmas (k-diffusion's DiscreteSchedule.sigma_to_t, quantize=False)."""
        ls = sigma.float().log()
        n = self.log_sigmas.shape[0]
        low = (torch.searchsorted(self.log_sigmas, ls.contiguous(), right=True) - 1).clamp(0, n - 2)
        lo, hi = self.log_sigmas[low], self.log_sigmas[low + 1]
        w = ((lo - ls) / (lo - hi)).clamp(0, 1)
        return (1 - w) * low + w * (low + 1)

    # --- text
    def vocabulary(self) -> list[str]:
        """Whole words of its CLIP tokenizer (tokens ending a word, letters only): what random token
        addition draws; empty for a tokenizer without a vocabulary (the mitigation then uses its own list)."""
        tok = getattr(self.tokenize, "tokenizer", None)
        vocab = tok.get_vocab() if tok is not None and hasattr(tok, "get_vocab") else {}
        return sorted(t[:-4] for t in vocab if t.endswith("</w>") and t[:-4].isalpha())

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        ids = self.tokenize(list(captions)).to(self._device)
        mask = (ids != getattr(self.text_encoder.config, "pad_token_id", -1)).long() if self._use_mask else None
        return self.text_encoder(ids, attention_mask=mask)[0].to(self._dtype)

    def uncond(self, n: int) -> torch.Tensor:
        if self._empty is None:
            self._empty = self.encode([""])
        return self._empty.expand(n, *self._empty.shape[1:])

    # --- denoiser
    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s = sigma.to(self._device, torch.float32)
        sv = s.view(-1, 1, 1, 1)
        xf = x.float()
        c_in = (sv ** 2 + 1).rsqrt()
        out = self.unet((xf * c_in).to(self._dtype), self.sigma_to_t(s), encoder_hidden_states=cond.to(self._dtype)).sample.float()
        if self.prediction_type == "epsilon":
            return xf - sv * out
        if self.prediction_type == "v_prediction":
            return xf / (sv ** 2 + 1) - out * sv * c_in
        return out

    # --- pixels
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            raise ModelError(f"expected a VAE to decode latents, got a model without one ({self.source})")
        sf = float(getattr(self.vae.config, "scaling_factor", 0.18215))
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        outs = []
        for i in range(0, latents.shape[0], self.decode_batch):  # bounds VAE activation memory
            z = latents[i:i + self.decode_batch].to(self._device, self._dtype) / sf + shift
            outs.append((self.vae.decode(z).sample.float() / 2 + 0.5).clamp(0, 1).cpu())
        return torch.cat(outs)


# --- loading -------------------------------------------------------------------------------

def cached_snapshot(repo_id: str, cache_dir: str | Path | None = None) -> Path:
    """The folder of a hub id's snapshot in the local Hugging Face cache; never downloads."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
    except Exception as e:  # LocalEntryNotFoundError, OfflineModeIsEnabled, HFValidationError...
        raise ModelError(f"expected hub id {repo_id!r} in the local Hugging Face cache (nothing is downloaded), "
                         f"got no cached snapshot ({type(e).__name__})") from None


def _check_folder(folder: Path, spec: str) -> None:
    missing = [c for c in _COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise ModelError(f"expected a diffusers Stable Diffusion folder with {', '.join(_COMPONENTS)} "
                         f"for {spec!r}, got {folder} without {', '.join(missing)}")
    pipeline = _pipeline_class(folder)
    if (folder / "text_encoder_2").is_dir() or "XL" in pipeline:
        # SDXL's UNet takes pooled text embeddings and size conditioning this adapter does not pass
        raise ModelError(f"expected Stable Diffusion 1.x or 2.x for {spec!r}, got an SDXL folder "
                         f"({pipeline or 'text_encoder_2'}): SDXL is not supported")


def _pipeline_class(folder: Path) -> str:
    import json

    try:
        return str(json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _scheduler_config(folder: Path) -> dict:
    import json

    p = folder / "scheduler" / "scheduler_config.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"expected a readable scheduler config at {p}, got {type(e).__name__}: {e}") from None


WEIGHT_SUFFIXES = (".safetensors", ".bin")
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")


def _variant_of(name: str) -> str | None:
    """'diffusion_pytorch_model.fp16.safetensors' -> 'fp16'; no variant -> None."""
    parts = name.split(".")
    return parts[-2].split("-0")[0] if len(parts) >= 3 else None   # a sharded variant: fp16-00001-of-00002


def _weights(folder: Path, component: str) -> list[Path]:
    return sorted(p for p in (folder / component).iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())


def pick_variant(folder: Path, requested: str | None, spec: str) -> str | None:
    """The weight variant to load: the requested one (it must be there), else the plain files,
    else the one variant every component has (how the Hugging Face cache holds variant="fp16")."""
    present = {c: {_variant_of(p.name) for p in _weights(folder, c)} for c in WEIGHT_COMPONENTS}
    if requested is not None:
        missing = [c for c, v in present.items() if requested not in v]
        if missing:
            raise ModelError(f"expected {requested!r} variant weights for {spec!r}, got none in "
                             f"{', '.join(missing)} (variants there: {sorted(str(v) for v in set().union(*present.values()))})")
        return requested
    if all(None in v for v in present.values()):
        return None
    common = set.intersection(*present.values()) - {None}
    if len(common) == 1:
        return common.pop()
    raise ModelError(f"expected plain weight files or one variant in every component of {spec!r}, got "
                     f"{ {c: sorted(str(x) for x in v) for c, v in present.items()} }; choose one with --variant")


def _loaded_files(folder: Path, variant: str | None, weights: bool = True) -> dict:
    """The files a load with this variant reads (weights, configs, tokenizer), by relative name:
    the fingerprint hashes each of them whole. diffusers reads a component's .safetensors when it
    has any, so a .bin beside them is not part of the model; weights=False: configs only (the
    --config folder of a single-file checkpoint)."""
    files = []
    for c in WEIGHT_COMPONENTS if weights else ():
        mine = [p for p in _weights(folder, c) if _variant_of(p.name) == variant]
        safe = [p for p in mine if p.suffix == ".safetensors"]
        files += safe or mine
    files += [p for c in _COMPONENTS for p in sorted((folder / c).glob("*.json")) + sorted((folder / c).glob("*.txt"))]
    return files_by_name(files, folder)


def from_folder(folder: Path, device: str, dtype: torch.dtype, spec: str = "",
                variant: str | None = None) -> StableDiffusionModel:
    """Load the components of a diffusers SD folder (no safety checker, no download); weights of
    a variant (fp16) when asked for, or when they are the only weights there."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    spec = spec or f"sd:{folder}"
    _check_folder(folder, spec)
    variant = pick_variant(folder, variant, spec)
    kw = {"local_files_only": True, **({"variant": variant} if variant else {})}
    try:
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype, **kw)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, **kw)
        text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", torch_dtype=dtype, **kw)
        tok = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"expected loadable diffusers components for {spec!r}, got {type(e).__name__}: {e}") from None
    return StableDiffusionModel(unet, vae, text, ClipTokens(tok), _scheduler_config(folder),
                                device=device, dtype=dtype, source=spec, files=_loaded_files(folder, variant))


def _checkpoint_shapes(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors as meta tensors (keys and shapes only), enough for diffusers to
    infer which default config it would use, without reading gigabytes of weights."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}
    sd = torch.load(str(path), map_location="meta", weights_only=True, mmap=True)
    while isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    return sd


def _single_file_config(path: Path, config: str | None, spec: str) -> Path:
    """The local diffusers config folder for a single-file checkpoint: --config (a folder or a
    cached hub id), else the default diffusers would pick for it, if that is in the local cache.
    (Left to itself, diffusers' from_single_file would download that default when it is missing.)"""
    if config:
        p = Path(config).expanduser()
        if p.is_dir():
            return p
        if _HUB_ID.match(config):
            return cached_snapshot(config)
        raise ModelError(f"expected --config to be a local diffusers folder or a cached hub id, got {config!r}")
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    try:
        default = fetch_diffusers_config(_checkpoint_shapes(path))["pretrained_model_name_or_path"]
    except Exception as e:
        raise ModelError(f"expected a Stable Diffusion checkpoint at {path}, got one diffusers cannot identify "
                         f"({type(e).__name__}: {e})") from None
    try:
        return cached_snapshot(default)
    except ModelError:
        raise ModelError(f"expected a local diffusers config for single file {spec!r}: pass --config <diffusers "
                         f"folder or cached hub id>; the default config diffusers infers for it, {default!r}, is "
                         f"not in the local Hugging Face cache and nothing is downloaded") from None


def from_single_file(path: Path, device: str, dtype: torch.dtype, config: str | None = None,
                     spec: str = "") -> StableDiffusionModel:
    """A .safetensors / .ckpt (original LDM layout) checkpoint, converted by diffusers with the
    component configs (and tokenizer, scheduler) of a local diffusers folder."""
    from diffusers import StableDiffusionPipeline

    spec = spec or f"sd:{path}"
    if path.suffix not in (".safetensors", ".ckpt", ".pt", ".pth", ".bin"):
        raise ModelError(f"expected a .safetensors or .ckpt checkpoint for {spec!r}, got {path.suffix or 'no suffix'}")
    cfg = _single_file_config(path, config, spec)
    _check_folder(cfg, f"--config {cfg}")
    import diffusers

    level = diffusers.utils.logging.get_verbosity()
    diffusers.utils.logging.set_verbosity_error()  # its conversion warns about float32-kept modules it has none of
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path), config=str(cfg), local_files_only=True, torch_dtype=dtype,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise ModelError(f"expected {spec!r} to load with config {cfg}, got {type(e).__name__}: {e}") from None
    finally:
        diffusers.utils.logging.set_verbosity(level)
    files = {"checkpoint": path.resolve(), "config": _loaded_files(cfg, None, weights=False)}
    return StableDiffusionModel(pipe.unet, pipe.vae, pipe.text_encoder, ClipTokens(pipe.tokenizer),
                                dict(pipe.scheduler.config), device=device, dtype=dtype, source=spec, files=files)


def _quiet_loaders() -> None:
    """No per-file progress bars from transformers / diffusers: the command line prints one
    'loading ...' line itself."""
    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()


def load_sd(arg: str, device: str = "cpu", dtype: str | torch.dtype | None = None,
            config: str | None = None, variant: str | None = None) -> StableDiffusionModel:
    """`sd:<arg>`: a diffusers folder, a hub id in the local cache, or a single checkpoint file."""
    spec = f"sd:{arg}"
    if not arg:
        raise ModelError("expected sd:<diffusers folder | hub id in the local cache | file.safetensors>, got sd: alone")
    dt = resolve_dtype(dtype, device)
    _quiet_loaders()
    p = Path(arg).expanduser()
    if p.is_dir():
        return from_folder(p, device, dt, spec, variant)
    if p.is_file():
        if variant is not None:
            raise ModelError(f"expected --variant only with a diffusers folder, got a single file {spec!r}")
        return from_single_file(p, device, dt, config, spec)
    if _HUB_ID.match(arg):
        try:
            folder = cached_snapshot(arg)
        except ModelError as e:
            raise ModelError(f"expected a diffusers folder or a hub id in the local cache for {spec!r}, got neither: "
                             f"no such folder, and {e}") from None
        return from_folder(folder, device, dt, spec, variant)
    raise ModelError(f"expected sd:<diffusers folder | hub id in the local cache | file.safetensors>, got {spec!r}: "
                     f"no such file or folder")
