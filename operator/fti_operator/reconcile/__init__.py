"""The one brain: per kind, read state -> call the pure code -> apply children -> write typed status.

Drivers (the Kopf controller, `fti local`) only deliver events: they call
`feature.reconcile`, `training.reconcile` or `inference.reconcile` with a `Context` and the
object's body, and honour `Result.requeue_after`. See docs/architecture.md.
"""

from .context import Context, Lookups, Metrics, NoMetrics, Result
from .kube import FIELD_MANAGER, ApiError, Kube

__all__ = ["FIELD_MANAGER", "ApiError", "Context", "Kube", "Lookups", "Metrics", "NoMetrics", "Result"]
