"""Recovery attacks on an erased model, and the gold standard they are calibrated against (a model retrained without the
data)."""
