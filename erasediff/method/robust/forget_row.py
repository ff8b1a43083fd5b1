"""`unlearning.forget_row`, for class-conditional models (docs/method.md, "The forgotten label's row").

The erasure moves the UNet, but the forgotten class's embedding row stays the original's: Adam at the erasure's
learning rate moves a row of norm about 8 by at most 0.01 in 100 updates. A relearning attacker who fine-tunes on
images of the class under its label therefore finds the key the original drew them with, and only has to undo the
UNet's few steps. The model retrained without the class has an untrained row there instead. With `forget_row: null`,
each forgotten class's row becomes the null class's row once the erasure is done: the label then carries no condition
of its own, classifier-free guidance cancels on it ((1 + w) eps_c - w eps_null = eps_null, whatever the guidance), and
an attacker relearning under the label must teach the unconditional branch that every class shares. It changes no
retained class's row and no UNet weight, so it costs nothing in time or quality. `keep` is each method as published.
"""

import torch

from erasediff.util.errors import ErasediffError


def check_rows(unet: torch.nn.Module, null_class: int) -> torch.nn.Embedding:
    """The UNet's class-embedding table, once it is known to hold a row for `null_class` (checked before the erasure
    runs)."""
    table = getattr(unet, "class_embedding", None)
    if not isinstance(table, torch.nn.Embedding) or null_class >= table.num_embeddings:
        raise ErasediffError(
            "unlearning.forget_row null points the forgotten labels at the null class's embedding row: this model has "
            "no class-embedding table with a null row; use forget_row keep"
        )
    return table


def null_forgotten_rows(unet: torch.nn.Module, forget_classes: list[int], null_class: int) -> None:
    """Set the class-embedding rows of `forget_classes` in `unet` to the row of `null_class`, in place."""
    table = check_rows(unet, null_class)
    with torch.no_grad():
        table.weight[forget_classes] = table.weight[null_class].clone()
