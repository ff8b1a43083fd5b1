"""ZenML stacks and the two custom flavors they use (registered by deploy/zenml/*.sh)."""
