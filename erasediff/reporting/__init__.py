"""What people read: the erasure report, the model card, and the figures (curves, sample grids)."""
