"""`python -m fti_pipelines.training`: train one model version per the pipeline contract.

Reads FTI_SPEC (the TrainingPipeline spec), FTI_ARTIFACT_STORE and FTI_MODEL_VERSION;
writes the result JSON (model, version, verdict, metrics, reasons, featureView,
trainingDataset, storageUri) to the termination log. Exit 0 for Validated and
Rejected alike; non-zero only when training failed.
"""

from ..contract import main_entry
from .run import main

if __name__ == "__main__":
    main_entry(main)
