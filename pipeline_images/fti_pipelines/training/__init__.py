"""The training pipeline (`python -m fti_pipelines.training`).

`run` orchestrates; `estimator` builds the estimator from the spec; `transformations`
builds the by-position sklearn Pipeline; `evaluation` computes metrics, gates and the
bias gate; `report` draws the plots and writes the report page.
"""

import os

# OpenMP threads (HistGradientBoosting, via libgomp) busy-wait by default; under a CPU
# limit or on a shared node that spinning starves the working threads and a fit takes
# several times longer. Read by
# libgomp when scikit-learn is first imported, so it is set before any import of it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
