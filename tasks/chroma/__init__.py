"""Chroma targets: where the worker writes (an embedded directory or a server)."""

from tasks.chroma.target import ChromaTarget, ChromaUnavailable, chroma_target_from_settings

__all__ = ["ChromaTarget", "ChromaUnavailable", "chroma_target_from_settings"]
