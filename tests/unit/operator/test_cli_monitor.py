"""`fti local monitor`: the monitoring job's spec built from a local InferenceService's status."""

from __future__ import annotations

from fti_operator.monitor_cli import monitor_spec

STORAGE = "file:///s/namespaces/default/models/fraud/{}/model"
LONG = "home/someone/checkouts/fti-operator/.fti/local/store" * 3  # a store path longer than a console line


def isvc(target=None):
    stable = {"revision": 1, "model": 3, "featureView": 1, "traffic": 100, "storageUri": STORAGE.format(3)}
    return {"kind": "InferenceService", "metadata": {"name": "fraud"}, "status": {"stable": stable, "target": target}}


def test_stable_only():
    spec = monitor_spec(isvc(), "6h", 500, None, None)
    assert spec == {
        "inferenceService": "fraud",
        "window": "6h",
        "minRows": 500,
        "drift": {},
        "revisions": [
            {
                "role": "stable",
                "modelVersion": 3,
                "featureViewVersion": 1,
                "modelUri": STORAGE.format(3),
                "profileUri": STORAGE.format(3) + "/monitoring-profile.json",
            }
        ],
    }


def test_a_canary_with_traffic_is_monitored_on_its_own_and_a_target_without_is_not():
    canary = {"revision": 2, "model": 4, "featureView": 2, "traffic": 10, "storageUri": STORAGE.format(4)}
    spec = monitor_spec(isvc(canary), "24h", 1000, "ks", 0.15)
    assert [(r["role"], r["modelVersion"], r["featureViewVersion"]) for r in spec["revisions"]] == [
        ("stable", 3, 1),
        ("canary", 4, 2),
    ]
    assert spec["drift"] == {"method": "ks", "threshold": 0.15}
    assert [r["role"] for r in monitor_spec(isvc({**canary, "traffic": 0}), "24h", 1000, None, None)["revisions"]] == ["stable"]


def test_spec_monitoring_is_what_runs_unless_an_option_overrides_it():
    resource = isvc()
    resource["spec"] = {
        "monitoring": {"window": "6h", "minRows": 200, "drift": {"method": "js", "threshold": 0.05, "features": ["amount"]}}
    }
    spec = monitor_spec(resource, None, None, None, None)
    assert (spec["window"], spec["minRows"]) == ("6h", 200)
    assert spec["drift"] == {"method": "js", "threshold": 0.05, "features": ["amount"]}
    spec = monitor_spec(resource, "1h", 10, "ks", None)
    assert (spec["window"], spec["minRows"]) == ("1h", 10)
    assert spec["drift"] == {"method": "ks", "features": ["amount"]}  # js's threshold does not carry over to ks
    assert monitor_spec(isvc(), None, None, None, None)["window"] == "24h"


def test_the_report_names_features_scores_method_and_where_it_lies(capsys):
    from fti_operator.monitor_cli import print_report

    spec = monitor_spec(isvc(), "24h", 200, "psi", None)
    result = {
        "ok": True,
        "revisions": [
            {
                "role": "stable",
                "modelVersion": 3,
                "featureViewVersion": 1,
                "rows": 505,
                "status": "Drifted",
                "driftedFeatures": 2,
                "features": [
                    {"name": "category", "method": "psi", "score": 5.123, "threshold": 0.2, "drifted": True},
                    {"name": "amount", "method": "psi", "score": 0.61, "threshold": 0.2, "drifted": True},
                    {"name": "age_group", "method": "psi", "score": 0.01, "threshold": 0.2, "drifted": False},
                ],
                "reportUri": f"file:///{LONG}/namespaces/default/monitoring/fraud/run-1/report.json",
            }
        ],
    }
    print_report(spec, result)
    text = capsys.readouterr().out
    assert "method psi" in text and "last 24h" in text and "Drifted" in text
    assert "stable v3: top features" in text
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("│") and len(line.split()) > 8}
    assert "5.123" in lines["category"] and "yes" in lines["category"] and "no" in lines["age_group"]
    # Never wrapped, however long (the console is 120 columns wide off a terminal).
    assert f"report: file:///{LONG}/namespaces/default/monitoring/fraud/run-1/report.html\n" in text
    assert f"report data: file:///{LONG}/namespaces/default/monitoring/fraud/run-1/report.json\n" in text
