"""Data: image sets as tensors, the embedded digits, I2P-format prompt files, pixels to PNG."""
