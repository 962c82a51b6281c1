"""Feature views: point-in-time-correct training data and versioned training datasets.

`join` plans and runs the DuckDB ASOF join (no feature value later than a label's
event time joins to it); `datasets` stores the result as immutable, content-hashed
training dataset versions under `training_datasets/<view>/<version>/<dataset version>/`.
"""

from .datasets import TrainingDataset, TrainingDatasets, content_hash
from .join import GroupSource, JoinPlan, build_sql, connect, plan_join, point_in_time_join, resolve_sources, source_from_files

__all__ = [
    "GroupSource",
    "JoinPlan",
    "TrainingDataset",
    "TrainingDatasets",
    "build_sql",
    "connect",
    "content_hash",
    "plan_join",
    "point_in_time_join",
    "resolve_sources",
    "source_from_files",
]
