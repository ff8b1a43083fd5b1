"""An erasure request: its schema, and one module per pipeline stage a ZenML step calls (base model, curate,
unlearn, evaluate, gates) plus the earlier-erasure checks that keep older erasures in force.
"""
