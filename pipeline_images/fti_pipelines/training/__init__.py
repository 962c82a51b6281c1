"""The training pipeline (`python -m fti_pipelines.training`).

`run` orchestrates; `estimator` builds the estimator from the spec; `transformations`
builds the by-position sklearn Pipeline; `evaluation` computes metrics, gates and the
bias gate; `report` draws the plots and writes the report page.
"""
