"""Rappit: multi-channel commerce operations hub."""

__version__ = "0.1.0"
