"""An embedding table with one new trainable row: the attacker's free class or token, every other row frozen."""

import torch


class FreeRow(torch.nn.Module):
    """Looks ids up in `frozen` plus one appended row, `free` (id len(frozen)), the only parameter that learns."""

    def __init__(self, frozen: torch.Tensor, free: torch.nn.Parameter) -> None:
        super().__init__()
        self.register_buffer("frozen", frozen)
        self.free = free

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.frozen, self.free])[ids]


def add_free_row(table: torch.Tensor, init_id: int) -> tuple[FreeRow, torch.nn.Parameter, int]:
    """A FreeRow over `table` whose new row starts at row `init_id`; returns it, the parameter and the new id."""
    free = torch.nn.Parameter(table[init_id : init_id + 1].detach().clone())
    return FreeRow(table.detach(), free), free, len(table)
