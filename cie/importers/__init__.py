"""Importers that turn public data sets into events."""
