"""Prediction heads: each builds its own targets from spans in seconds and decodes its outputs
back to scored candidate moments."""
