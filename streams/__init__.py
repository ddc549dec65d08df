"""Faust stream processors that keep the projections up to date."""
