"""`python -m fti_pipelines.feature.drop_online`: delete a retired feature-group version's online data.

The operator never holds store credentials (docs/pipeline-contract.md), so it does not
delete anything itself: once no revision reads a feature-group version (docs/versions.md,
"Retired") it starts this Job from the version's suspended CronJob, whose FTI_SPEC names
the version, and reads what was dropped from the termination message. Only the online
copy goes: the offline snapshots stay (artifacts are immutable), and a rollback to a
revision that reads the version re-materialises it from them.

Idempotent: a version already absent is reported as such (`onlineDropped: false`), and
a drop that died half-way is finished by the next one (the Redis backend deletes the
data before the metadata).

The result: featureGroup, version, onlineDropped (whether the version was in the online
store), onlineKeysDropped (the entities deleted).
"""

from __future__ import annotations

import logging
from typing import Any

from ..contract import PipelineContext, PipelineError, main_entry
from ..store.online import open_online_store
from .pipeline import parse_spec

log = logging.getLogger("fti_pipelines.feature")


def run(ctx: PipelineContext) -> dict[str, Any]:
    fg = parse_spec(ctx.spec).feature_group
    result: dict[str, Any] = {"featureGroup": fg.name, "version": fg.version}
    if not ctx.online_store:
        raise PipelineError("MissingOnlineStore", "FTI_ONLINE_STORE is not set: there is no online store to drop from")
    with open_online_store(ctx.online_store, ctx.namespace) as online:
        present = online.version_info(fg.name, fg.version) is not None
        dropped = online.drop_version(fg.name, fg.version)  # also when absent: finishes a half-done drop
    log.info("%s v%d: %d online keys dropped%s", fg.name, fg.version, dropped, "" if present else " (already absent)")
    return result | {"onlineDropped": present, "onlineKeysDropped": dropped}


if __name__ == "__main__":
    main_entry(run)
