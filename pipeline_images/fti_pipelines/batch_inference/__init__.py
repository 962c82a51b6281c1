"""Batch inference: `python -m fti_pipelines.batch_inference` scores an input of entities with a
registered model and its feature view (point in time as of the run, or the latest values)."""
