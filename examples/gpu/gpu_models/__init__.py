"""Estimator entrypoints of examples/gpu/ (copied into the image by its Dockerfile)."""
