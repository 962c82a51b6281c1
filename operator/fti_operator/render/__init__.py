"""Pure renderers: (resource, resolved versions, operator config) -> child manifests.

Nothing here talks to the API server; the handlers and the embedded runner both call it,
so a cluster and a laptop run the same pod templates.
"""
