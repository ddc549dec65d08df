"""Sentiment scoring of customer texts: ``model.load_model()`` for the product model, ``model.load_baseline()`` for VADER."""
