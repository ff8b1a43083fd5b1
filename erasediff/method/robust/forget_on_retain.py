"""`unlearning.forget_on_retain`: against the guidance sweep (docs/method.md, "The forgotten condition on other
images").

The remap loss teaches the forgotten condition c_f only on noised images of the forgotten class. A sampling
trajectory under c_f that heads anywhere else meets c_f where nothing was taught, and there the UNet still
pulls towards the class; classifier-free guidance multiplies that pull by (1 + w). Some rows of each forget batch
therefore carry a retain image instead, still under c_f, and are remapped to that image's own condition:
along any trajectory, c_f then denoises like the condition of what is already there, as a class the model never
learned does. `unlearning.forget_on_retain: 0` runs without it.
"""

import torch

from erasediff.data.image_sets import LabeledImages
from erasediff.method.losses import NoisedBatch


def with_retain_rows(
    forget: NoisedBatch, retain: LabeledImages, share: float, generator: torch.Generator
) -> NoisedBatch:
    """The forget batch with the images of its last `share` of rows replaced by random retain items, each aimed at
    its own condition; the rows keep the forgotten condition, noise and timestep. The first rows stay images of the
    forgotten class (the relearning term's simulated attacker reads those)."""
    n = round(share * len(forget.labels))
    if n == 0:
        return forget
    pick = torch.randint(len(retain), (n,), generator=generator)
    x0, substitute = forget.x0.clone(), forget.substitute.clone()
    x0[-n:], substitute[-n:] = retain.images[pick].to(x0), retain.labels[pick].to(substitute)
    return NoisedBatch(x0, forget.labels, forget.noise, forget.timesteps, substitute)
