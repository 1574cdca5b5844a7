"""AWS::ElasticLoadBalancingV2::ListenerCertificate: more certificates for an HTTPS (or TLS)
listener, beyond its default one. Clients choose among them by SNI (testbed.alb.tls)."""

from __future__ import annotations

from dataclasses import replace

from testbed.model.resources.base import ResourceContext, ResourceType, prop, ref
from testbed.model.resources.elbv2.common import LISTENER, family
from testbed.model.resources.elbv2.listener import SECURE, certificate_arns
from testbed.model.resources.registry import register

LISTENER_CERTIFICATE = "AWS::ElasticLoadBalancingV2::ListenerCertificate"


def _build(ctx: ResourceContext) -> None:
    listeners = family(ctx.state)["listeners"]
    listener = listeners[ctx.props["ListenerArn"]]
    if listener.protocol not in SECURE:
        raise ctx.fail(
            f"listener {listener.logical_id} is a {listener.protocol or 'gateway'} listener: "
            "only HTTPS and TLS listeners take certificates",
            prop="ListenerArn",
        )
    added = certificate_arns(ctx, "Certificates")
    already = [arn for arn in added if arn in listener.certificates]
    if already:
        raise ctx.fail(
            f"listener {listener.logical_id} already has certificate {already[0]}",
            prop="Certificates",
            hint="list each certificate once (the default one is the listener's)",
        )
    # Template order after the default certificate; the listener keeps its place.
    listeners[listener.logical_id] = replace(listener, certificates=listener.certificates + added)


register(
    ResourceType(
        LISTENER_CERTIFICATE,
        _build,
        properties={
            "ListenerArn": ref(LISTENER, required=True),
            "Certificates": prop("list", required=True),
        },
        # CloudFormation gives the listener's ARN... and nothing of its own worth a Ref here;
        # the lab answers a Ref with the logical id.
    )
)
