"""Names and defaults the command line needs, torch-free, so it checks a typo (and answers --help)
before loading anything: label presets (attack.stages.labels.PRESETS), the template masks'
near-duplicate window (attack.stages.masks.MaskParams) and the demo store's folder. Score kinds
live in their registry, attack.scores."""
from __future__ import annotations

import math
from pathlib import Path

# label threshold presets; attack.stages.labels.PRESETS holds their values
PRESET_NAMES = ("onestep-code", "paper", "verbatim")
# near-duplicate RMSE window of template masks: the paper code's SSE 1e2..1e3 on 256x256x3
DUP_RMSE_MIN = math.sqrt(1e2 / (3 * 256 * 256))
DUP_RMSE_MAX = math.sqrt(1e3 / (3 * 256 * 256))
DEMO_STORE = Path("data/demo")
