"""diffill: a local fill-in-the-middle diffusion autocomplete backend."""

__version__ = "0.1.0"
