"""tunewise's version, recorded in results.json and in the keys of trained adapters."""

__version__ = "0.1.0"
