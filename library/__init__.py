"""The software of a community branch of a city public library network."""

__version__ = "0.1.0"
