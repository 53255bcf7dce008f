"""BALROG-style evaluation of LLM agents in games, with the MOSAIC multi-agent extension."""

__version__ = "0.1.0"
