"""Unlearning per target kind: `target.classes` (a class-conditional model) and `target.concept` (a text-to-image
pipeline)."""
