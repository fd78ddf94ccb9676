"""The router exports the content digest of the classifier it loaded
(``tierguard_classifier_info``), computed by the operator's own function."""

from __future__ import annotations

from pathlib import Path

from routerkit import router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api import metrics as m
from tierguard.api.classifierdigest import classifier_digest, model_sha256
from tierguard.api.routerconfig import RouterConfig
from tierguard.router.metrics import RouterMetrics
from tierguard.router.runtime import RouterSettings, Runtime, apply_config


def _info(rt: Runtime) -> list[str]:
    text = rt.metrics.exposition().decode()
    return [ln for ln in text.splitlines() if ln.startswith(m.CLASSIFIER_INFO.name + "{")]


async def test_info_metric_reports_the_loaded_digest_and_follows_reloads(
    tiny_classifier: Path,
) -> None:
    cfg = RouterConfig.model_validate({**router_config(tiny_classifier), "revision": "rev1"})
    rt = Runtime(settings=RouterSettings(config=cfg), metrics=RouterMetrics())
    await apply_config(rt, cfg)
    want = classifier_digest(model_sha256(tiny_classifier.read_bytes()), cfg.classifier)
    assert rt.state is not None and rt.state.classifier_digest == want
    assert _info(rt) == [
        f'{m.CLASSIFIER_INFO.name}{{digest="{want}",policy="{cfg.policy}",revision="rev1"}} 1.0'
    ]
    # A threshold edit (same model file, classifier kept) changes the digest; one series.
    doc = {**router_config(tiny_classifier), "revision": "rev2"}
    doc["classifier"]["tiers"][0]["threshold"] = 0.9
    cfg2 = RouterConfig.model_validate(doc)
    await apply_config(rt, cfg2)
    new = classifier_digest(model_sha256(tiny_classifier.read_bytes()), cfg2.classifier)
    assert new != want
    assert _info(rt) == [
        f'{m.CLASSIFIER_INFO.name}{{digest="{new}",policy="{cfg.policy}",revision="rev2"}} 1.0'
    ]
    await rt.state.pool.close()
