"""Penguin species inference service: model artefact, FastAPI app, metrics and traces."""
