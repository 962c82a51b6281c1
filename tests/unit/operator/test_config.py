"""OperatorConfig: the data volume the chart mounts into pipeline pods."""

from __future__ import annotations

import pytest

from fti_operator.config import ConfigError, OperatorConfig
from fti_operator.render.pods import pipeline_container, pod_template


def test_data_volume_mounted_at_its_path_when_a_claim_is_set() -> None:
    config = OperatorConfig.from_env(
        {"FTI_STORE_VOLUME_CLAIM": "fti-data", "FTI_ARTIFACT_STORE": "file:///var/lib/fti/artifacts"}
    )
    volumes = pod_template([], config, pod_labels={})["spec"]["volumes"]
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "fti-data"}} in volumes
    container = pipeline_container("img", "fti_pipelines.feature", {}, config, None)
    assert {"name": "store", "mountPath": "/var/lib/fti"} in container["volumeMounts"]


def test_no_claim_no_volume() -> None:
    config = OperatorConfig.from_env({"FTI_ARTIFACT_STORE": "s3://ml/fti"})
    assert all(v["name"] != "store" for v in pod_template([], config, pod_labels={})["spec"]["volumes"])


def test_file_store_outside_the_data_volume_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"FTI_ARTIFACT_STORE=.*FTI_DATA_VOLUME_PATH"):
        OperatorConfig.from_env({"FTI_STORE_VOLUME_CLAIM": "d", "FTI_ARTIFACT_STORE": "file:///srv/artifacts"})


def test_relative_data_volume_path_is_refused() -> None:
    with pytest.raises(ConfigError, match="FTI_DATA_VOLUME_PATH"):
        OperatorConfig.from_env({"FTI_DATA_VOLUME_PATH": "data"})
