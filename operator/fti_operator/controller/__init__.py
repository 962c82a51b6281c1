"""Driver 1: the Kopf controller. Watch events -> a work queue -> `fti_operator.reconcile`.

The only package that imports kopf, the kubernetes client, urllib3 and prometheus_client.
`app.run` starts it; triggers.py says which event queues which reconcile, indexes.py answers
the reconcilers' cross-resource lookups, kube_http.py is their `Kube` (docs/architecture.md).
"""
