"""The version of landscape (stored in every file it writes)."""

__version__ = "0.1.0"
