"""What a registered version stores: a model folder as content-addressed parts, rebuilt byte for byte."""
