"""How far a model looks: the radius over which one input pixel changes the logits, measured
once on the model itself, so that overlap tiling keeps enough context for its masks to equal
the untiled ones (the fixed tile / 8 changed 1.5% of a brain U-Net's pixels).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: a logit counts as changed above this share of the largest logit
RELATIVE_CHANGE = 1e-4


def influence_radius(logits_of: Callable[[np.ndarray], np.ndarray], side: int,
                     channels: int) -> int:
    """Pixels from an impulse at the centre of a mid-grey side x side image to the farthest
    logit it changes (side // 2 when it reaches the border: the field is at least that)."""
    base = np.full((side, side, channels), 128, np.uint8)
    hit = base.copy()
    c = side // 2
    hit[c - 1:c + 1, c - 1:c + 1] = 255
    a, b = logits_of(base), logits_of(hit)
    changed = np.abs(a.astype(np.float32) - b.astype(np.float32))
    changed = changed.max(axis=0) if changed.ndim == 3 else changed
    ys, xs = np.nonzero(changed > RELATIVE_CHANGE * max(float(np.abs(a).max()), 1e-6))
    if ys.size == 0:
        return 0
    return int(min(max(np.abs(ys - c).max(), np.abs(xs - c).max()) + 1, c))
