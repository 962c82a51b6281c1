"""`python -m fti_pipelines.monitoring`: one monitoring run under the pipeline contract.

FTI_SPEC = {inferenceService, window, minRows, drift{method, threshold, features,
minDriftedFeatures}, revisions[{role, modelVersion, featureViewVersion, modelUri, profileUri}]};
FTI_RUN_TIME is the window's end. The result (per revision: status, rows, drifted
features, reportUri) goes to the termination log (docs/monitoring.md).
"""

from ..contract import main_entry
from .job import main

if __name__ == "__main__":
    main_entry(main)
