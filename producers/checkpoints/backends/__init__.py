"""Checkpoint backends, one module per store; pick one with ``producers.checkpoints``."""
