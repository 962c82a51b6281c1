"""Real requests for a served model: recent labelled events replayed from the feature store.

`fti local apply --predict N` and `make demo` need entity keys that exist and
request-time features with realistic values; both come from the label feature group's
offline data, the same events the model was trained and evaluated on. This is the one
place the embedded runner reads the stores directly, so it imports `fti_pipelines` lazily.
"""

from __future__ import annotations

from typing import Any


def sample_instances(artifact_store: str, model_name: str, model_version: int, request_features: list[str],
                     n: int) -> list[dict[str, Any]]:
    try:
        from fti_pipelines.registry import ModelRegistry
        from fti_pipelines.store.artifacts import ArtifactStore
        from fti_pipelines.store.offline import FeatureStore
    except ImportError as exc:  # the operator image has no pipelines
        raise RuntimeError("sampling requests needs the fti-pipelines package installed") from exc
    store = ArtifactStore(artifact_store)
    card = ModelRegistry(store).card(model_name, model_version)
    label_fg = card["featureView"]["label"]["featureGroup"]
    keys = list(card.get("entityKeys") or [])
    columns = list(dict.fromkeys([*keys, *request_features]))
    frame = FeatureStore(store).read(label_fg["name"], int(label_fg["version"]), columns=columns)
    frame = frame.dropna(subset=keys).tail(max(n * 20, n))
    picked = frame.drop_duplicates(subset=keys).tail(n)
    return [{c: _plain(row[c]) for c in columns} for _, row in picked.iterrows()]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
