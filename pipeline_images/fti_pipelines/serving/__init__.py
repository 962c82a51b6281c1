"""Online inference on KServe's model server: feature lookup + the registered model.

Roles (`python -m fti_pipelines.serving --role ...`):
  combined     lookup + predict in one kserve.Model (one hop, the default)
  transformer  lookup, then the predictor over KServe's v1 protocol (KServe's transformer pattern)
  predictor    the model alone, on plain ordered rows (like KServe's stock sklearn runtime)

`launch` starts a server as a subprocess, waits for readiness and sends requests.
"""
