"""landscape: reduced loss landscapes (Omnigrok L/U curves) for studying grokking."""

__version__ = "0.1.0"
