"""Runnable examples: data generators and transforms the example manifests refer to."""
