"""Chroma targets: where the worker writes (an embedded directory or a server).

:mod:`~tasks.chroma.target` is the interface, :mod:`~tasks.chroma.targets` holds one
module per target, :mod:`~tasks.chroma.factory` picks one from the settings.
"""
