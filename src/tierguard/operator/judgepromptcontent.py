"""The pairwise judge's prompt template as content (``judge.promptConfigMapRef``): what
the operator read, and the frozen copy the routers mount. Pure; the read is the
controller's.

It works as the classifier's content does (:mod:`tierguard.operator.classifiercontent`):

* :func:`lookup` turns the referenced ConfigMap (or the error reading it) into a
  :class:`JudgePromptLookup`: the template's content digest
  (:func:`tierguard.api.judgeprompt.template_digest`), part of the revision, and the text
  to freeze; or ``error`` when it could not be read, is not UTF-8 text, or is not a
  usable template (:func:`tierguard.api.judgeprompt.check_template`, whose message names
  the unknown or missing placeholders). An error is *unknown*, never *changed*: the
  rollout holds where it is and the routers keep the frozen copy they mount.
* :func:`prompt_copy` is that frozen copy, ``<p>-judge-prompt-<digest[:10]>``,
  ``immutable: true``, named by the digest ``status.judgePromptDigest`` rolls out; the
  routers mount it (:func:`volume_source`), never the source, so editing the source
  mid-rollout cannot change the running judge: the operator reads the edit, which is a
  new revision, and renders a new copy for it. The same bytes under another ConfigMap
  name are the same digest, hence the same revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tierguard.api import constants as c
from tierguard.api.classifierdigest import ModelKeyError, configmap_model
from tierguard.api.judgeprompt import JudgePromptRef, TemplateError, check_template, template_digest
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus

#: Where the routers mount the frozen copy (the file is the reference's key).
JUDGE_PROMPT_DIR = "/etc/tierguard/judge-prompt"


@dataclass(frozen=True)
class JudgePromptLookup:
    """What the operator knows about the judge prompt's content this reconcile.

    ``digest`` "" with no ``error``: no reference (the built-in template, which is part
    of the router release). ``error`` set: unknown (unreadable or unusable)."""

    digest: str = ""
    source: str = ""  # "ConfigMap <name> key <key>", for messages
    key: str = ""
    text: str = ""
    error: str | None = None

    @property
    def unknown(self) -> bool:
        return self.error is not None


BUILTIN = JudgePromptLookup()


def reference(spec: RoutingPolicySpec) -> JudgePromptRef | None:
    return spec.router.shadow.judge.prompt_config_map_ref


def lookup(
    spec: RoutingPolicySpec, configmap: Mapping[str, Any] | None, error: str | None = None
) -> JudgePromptLookup:
    """The lookup for ``spec`` from the referenced ConfigMap as read (``error``: the read
    failed). A spec without a reference uses the built-in template."""
    ref = reference(spec)
    if ref is None:
        return BUILTIN
    source = f"ConfigMap {ref.name} key {ref.key}"
    if error is not None or configmap is None:
        return JudgePromptLookup(source=source, key=ref.key, error=error or "not read")
    try:
        _, _, data = configmap_model(configmap, ref.key)
    except ModelKeyError as exc:
        return JudgePromptLookup(source=source, key=ref.key, error=f"ConfigMap {ref.name}: {exc}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return JudgePromptLookup(source=source, key=ref.key, error=f"not UTF-8 text: {exc}")
    try:
        check_template(text)
    except TemplateError as exc:
        return JudgePromptLookup(source=source, key=ref.key, error=str(exc))
    return JudgePromptLookup(digest=template_digest(text), source=source, key=ref.key, text=text)


def copy_name(policy: str, digest: str) -> str:
    """The frozen judge prompt copy of ``digest``."""
    return f"{policy}-judge-prompt-{digest[:10]}"


def prompt_copy(
    meta: dict[str, Any], policy: str, digest: str, looked_up: JudgePromptLookup
) -> dict[str, Any]:
    """The immutable copy (``meta``: the policy's rendered metadata, name replaced)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            **meta,
            "name": copy_name(policy, digest),
            "annotations": {c.ANNOTATION_JUDGE_PROMPT_DIGEST: digest},
        },
        "immutable": True,
        "data": {looked_up.key: looked_up.text},
    }


def volume_source(policy: str, spec: RoutingPolicySpec, status: RoutingPolicyStatus) -> str | None:
    """The ConfigMap the routers mount as their judge prompt: the frozen copy of the digest
    status rolls out; the source itself only before its content was ever read (pods wait
    for it as for any missing ConfigMap). None: no reference."""
    ref = reference(spec)
    if ref is None:
        return None
    if status.judge_prompt_digest:
        return copy_name(policy, status.judge_prompt_digest)
    return ref.name


def router_path(spec: RoutingPolicySpec) -> str | None:
    """The template file the router loads (None: the built-in template)."""
    ref = reference(spec)
    return None if ref is None else f"{JUDGE_PROMPT_DIR}/{ref.key}"
