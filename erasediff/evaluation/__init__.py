"""Evaluation: the original and the unlearned model side by side (class accuracy, FID/KID, NudeNet rate, CLIP score)."""
