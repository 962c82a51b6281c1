"""`python -m fti_pipelines.feature`: one run of a FeaturePipeline under the pipeline contract."""

from ..contract import main_entry
from .pipeline import run

if __name__ == "__main__":
    main_entry(run)
