"""Model monitoring (`python -m fti_pipelines.monitoring`): drift of served inputs and scores.

`profile` builds the training profile the training pipeline stores next to the model;
`predictions` reads a window of the prediction log; `drift` holds the distances;
`job` runs one monitoring pass per the pipeline contract; `report` renders report.html.
docs/monitoring.md describes the whole loop.
"""
