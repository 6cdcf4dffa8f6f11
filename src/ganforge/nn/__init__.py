"""Layers used identically by two or more families."""
