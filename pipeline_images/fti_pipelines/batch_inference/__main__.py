"""`python -m fti_pipelines.batch_inference`: one batch-scoring run under the pipeline contract.

FTI_SPEC = {"name", "model": {name, version}, "featureView": {name, version},
            "batch": {input{uri,format}, output{uri,format}, asOf: runTime|latest, chunkRows}};
FTI_RUN_TIME is the time the run stands for. The result (rowsScored, outputUri,
modelVersion, featureViewVersion, ...) goes to the termination log.
"""

from ..contract import main_entry
from .scoring import score_run

if __name__ == "__main__":
    main_entry(score_run)
