"""How the loop runs, apart from what it computes: checkpoints (`checkpoint_every`), data-parallel processes
(`processes`), the retain probe (`probe`) and the per-step metrics log."""
