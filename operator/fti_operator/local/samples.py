"""Real requests for a served model: recent labelled events replayed from the feature store.

`fti local apply --predict N` and `make demo` need entity keys that exist and
request-time features with realistic values; both come from the label feature group's
offline data, the same events the model was trained and evaluated on. This is the one
place the embedded runner reads the stores directly, so it imports `fti_pipelines` lazily.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def sample_instances(
    artifact_store: str, namespace: str, model_name: str, model_version: int, request_features: list[str], n: int
) -> list[tuple[dict[str, Any], Any]]:
    """(request instance, the label it was recorded with) for n recent events of `namespace`'s stores."""
    try:
        import pandas as pd

        from fti_pipelines.registry import ModelRegistry
        from fti_pipelines.store.offline import FeatureStore
        from fti_pipelines.store.tenancy import namespace_store
    except ImportError as exc:  # the operator image has no pipelines
        raise RuntimeError("sampling requests needs the fti-pipelines package installed") from exc
    store = namespace_store(artifact_store, namespace)
    card = ModelRegistry(store).card(model_name, model_version)
    label = card["featureView"]["label"]
    keys = list(card.get("entityKeys") or [])
    columns = list(dict.fromkeys([*keys, *request_features]))
    frame = FeatureStore(store).read(
        label["featureGroup"]["name"],
        int(label["featureGroup"]["version"]),
        columns=[*columns, label["column"]] if label["column"] not in columns else columns,
    )
    frame = frame.dropna(subset=keys).drop_duplicates(subset=keys, keep="last")
    # Recent events of both classes, so the answers show the model separating them.
    positives = frame[frame[label["column"]] == 1].tail(n // 2)
    picked = pd.concat([positives, frame[frame[label["column"]] != 1].tail(n - len(positives))])
    return [({c: _plain(row[c]) for c in columns}, _plain(row[label["column"]])) for _, row in picked.iterrows()]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


SHIFT_FACTOR = 5  # numeric request features of a deliberately shifted batch: this many times larger


def shift_instances(instances: list[dict[str, Any]], features: list[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The same requests with their request-time `features` moved away from what the model was
    trained on, for showing drift (`fti local apply --shifted`, docs/monitoring.md): numbers
    SHIFT_FACTOR times larger, every categorical value replaced by the batch's rarest one.
    Entity keys stay, so the looked-up features are the cards' own. Returns the shifted
    requests and, per feature, how it was moved."""
    shifted = [dict(i) for i in instances]
    how: dict[str, str] = {}
    for feature in features:
        values = [i[feature] for i in instances if i.get(feature) is not None]
        if not values:
            continue
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            integral = all(isinstance(v, int) for v in values)
            for i in shifted:
                if i.get(feature) is not None:
                    moved = i[feature] * SHIFT_FACTOR
                    i[feature] = int(moved) if integral else round(float(moved), 2)
            how[feature] = f"x{SHIFT_FACTOR}"
        else:
            counts = Counter(str(v) for v in values)
            rarest = min(counts, key=lambda v: (counts[v], v))
            for i in shifted:
                i[feature] = rarest
            how[feature] = f"all {rarest!r}"
    return shifted, how
