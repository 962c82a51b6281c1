"""Pure version logic (docs/versions.md): model-version numbering, `latest`, servability, retention.

No API calls here: handlers pass in what they read from status and indexes, and get
decisions back, so every rule is a table test.
"""

from .models import ModelInfo, latest_validated, models_from_status, next_model_version, resolve_model
from .retention import fg_version_states, needed_by_services, needed_feature_groups, revision_feature_groups
from .serving import FeatureGroupAvailability, ServingDecision, decide_pair, feature_availability

__all__ = [
    "FeatureGroupAvailability",
    "ModelInfo",
    "ServingDecision",
    "decide_pair",
    "feature_availability",
    "fg_version_states",
    "latest_validated",
    "models_from_status",
    "needed_by_services",
    "needed_feature_groups",
    "next_model_version",
    "resolve_model",
    "revision_feature_groups",
]
