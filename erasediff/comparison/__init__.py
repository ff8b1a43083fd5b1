"""Original and unlearned model side by side: the same samples, metrics, attacks and grids for both (class models and
text-to-image pipelines), written as the evaluation files the gates read."""
