"""The canary the spec asks for, as KServe can carry it out (docs/rollouts.md, "Canary").

KServe splits traffic between revisions only in Serverless mode; in RawDeployment it
silently ignores `canaryTrafficPercent`. Whether it can split is read from the deployment
mode (reconcile/kserve.py); where it cannot, the rollout plan holds the new pair back (or
rolls it out to all traffic when the spec opts in) and the `Canary` condition says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import InferenceService
from ..versions.rollout import TRAFFIC_SPLIT_UNSUPPORTED, Plan, Want, describe
from .conditions import condition
from .context import Context
from .kserve import mode_from, splits_traffic


def traffic_split(ctx: Context, child: Mapping[str, Any] | None, isvc: InferenceService) -> bool:
    """Whether KServe can split traffic for this service (only in Serverless mode): the
    deployment-mode annotation (ours or the child's) or the mode KServe reports for the child,
    else the cluster default in KServe's inferenceservice-config (reconcile/kserve.py)."""
    mode = mode_from(isvc.metadata.annotations, child)
    if mode is None:
        mode = ctx.kserve_defaults.mode(ctx.kube, ctx.config.kserve_namespace)
    return splits_traffic(mode)


def canary_condition(want: Want, plan: Plan) -> tuple[dict[str, Any], ...]:
    """`Canary` while the spec asks for one (pure): True while a canary takes its share; False
    with TrafficSplitUnsupported where KServe cannot split traffic (the new pair is held back, or
    rolled out to all traffic when the spec opts in), otherwise False/NoCanaryInProgress."""
    if want.canary_percent is None:
        return ()
    target = plan.target
    if not want.traffic_split:
        held = plan.progressing[1] == TRAFFIC_SPLIT_UNSUPPORTED
        fallback = (
            "new revisions are rolled out to all traffic at once"
            if want.canary_fallback == "rollOut"
            else ("the new revision is held back" if held else "a new revision will be held back")
        )
        return (
            condition(
                "Canary",
                False,
                TRAFFIC_SPLIT_UNSUPPORTED,
                f"KServe cannot split traffic in this deployment mode (RawDeployment): {fallback}",
            ),
        )
    if target is not None and plan.canary_percent is not None:
        share = target.get("traffic")
        return (
            condition(
                "Canary",
                True,
                "CanaryInProgress",
                f"{describe(target)} asks for {plan.canary_percent} %"
                + (f", KServe routes {share} % to it" if share is not None else ", not ready yet"),
            ),
        )
    return (condition("Canary", False, "NoCanaryInProgress", "the stable revision takes all the traffic"),)
