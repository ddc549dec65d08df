"""Projections: read models built from the event log, each rebuildable by replaying its topics."""
