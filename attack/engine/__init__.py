"""Where the stages compute: this process (the stages' own loops) or a Ray cluster
(attack.engine.ray, with the local cluster's bookkeeping in attack.engine.cluster).

`choose_engine` is the one place that turns a name into an engine: None for local, else a
RayEngine the stages take; ray is imported only when it is asked for.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

from attack.errors import AttackError

ENGINES = ("local", "ray")


def choose_engine(name: str, *, model: Any = None, device: Optional[str] = None, address: Optional[str] = None,
                  workers: Optional[int] = None, dtype: Optional[str] = None, config: Optional[str] = None,
                  variant: Optional[str] = None, warn: Callable[[str], None] = lambda m: None) -> Any:
    """None for `local`, else a RayEngine. model: the loaded model its actors load again (from its
    spec and these loading options); None: the retrieval stage, whose actors load the embedder on
    `device`. workers defaults to one per GPU on CUDA, else one per CPU core."""
    if name not in ENGINES:
        raise AttackError(f"expected an engine among {', '.join(ENGINES)}, got {name!r}")
    if name == "local":
        return None
    import torch

    from attack.engine.ray import RayEngine, RayOptions, as_model_spec

    device = str(model.device) if model is not None else device
    default = max(torch.cuda.device_count(), 1) if device.startswith("cuda") else (os.cpu_count() or 1)
    opts = RayOptions(address=address, workers=workers or default, device=device)
    spec = as_model_spec(model, dtype, config, variant) if model is not None else None
    return RayEngine(spec, opts, warn=warn)
