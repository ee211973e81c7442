"""Tool version written into exports' manifests and the exports table."""
__version__ = "0.1.0"
