"""The reference feature pipeline: `python -m fti_pipelines.feature` (see pipeline.py)."""

from .pipeline import run

__all__ = ["run"]
