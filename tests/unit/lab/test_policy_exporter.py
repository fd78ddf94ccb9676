"""The scale exporter: policy lines, and the classifier-info series that tells the operator
the "routers" run the rolled-out revision (without it every stage would be held)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tierguard.api import metrics as m
from tierguard.lab.policy_exporter import EXPORTER_DIGEST, PolicyMetrics, PolicyRef, parse_policies


def test_policy_lines_take_an_optional_revision() -> None:
    lines = ["# comment", "", "team-a/p1", "team-b/p2 abc123def0"]
    assert parse_policies(lines) == [
        PolicyRef("team-a", "p1"),
        PolicyRef("team-b", "p2", "abc123def0"),
    ]
    with pytest.raises(ValueError, match="namespace/name"):
        parse_policies(["no-namespace"])


def _families(collector: PolicyMetrics) -> dict[str, list[Any]]:
    reg = CollectorRegistry()
    reg.register(collector)
    text = generate_latest(reg).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_classifier_info_only_for_policies_with_a_revision() -> None:
    refs = [PolicyRef("team-a", "p1", "rev1"), PolicyRef("team-b", "p2")]
    fams = _families(PolicyMetrics(refs, namespace_label="namespace"))
    info = fams[m.CLASSIFIER_INFO.name]
    assert [(s.labels, s.value) for s in info] == [
        (
            {"policy": "p1", "digest": EXPORTER_DIGEST, "revision": "rev1", "namespace": "team-a"},
            1.0,
        )
    ]
    assert m.CLASSIFIER_INFO.name not in _families(PolicyMetrics([PolicyRef("a", "b")]))
