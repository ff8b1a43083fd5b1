"""The embedded default models, trained here from scikit-learn's digits: a class-conditional DDPM with its
evaluator, and a tiny text-to-image pipeline; and how a model spec ('digits', a folder) resolves.
"""
