"""The generic training loop, checkpoint I/O, EMA and device/precision helpers."""
