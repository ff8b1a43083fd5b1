"""Models from local folders: class-conditional diffusion, text-to-image pipelines, the evaluator classifier,
CLIP, and sampling from each.
"""
