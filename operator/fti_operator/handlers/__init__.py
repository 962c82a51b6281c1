"""Thin Kopf handlers: read state, call the pure code, apply children, write status.

Importing `fti_operator.handlers.wiring` registers the Kopf handlers; the reconcile
functions in feature/training/inference/jobs are plain functions of (runtime, body, index
data), testable without Kopf.
"""
