"""Names that several components must agree on (API group, labels, annotations)."""

from __future__ import annotations

from typing import Final

GROUP: Final = "tierguard.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "RoutingPolicy"
PLURAL: Final = "routingpolicies"
SINGULAR: Final = "routingpolicy"
SHORT_NAMES: Final = ("rpol",)
CATEGORIES: Final = ("tierguard",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

#: Manual control: ``kubectl tierguard promote`` and GitOps commits set these two.
#: The operator acts once per distinct (action, nonce) and records it in status;
#: it never edits the annotations (they belong to the user / Git).
ANNOTATION_ACTION: Final = f"{GROUP}/action"
ANNOTATION_ACTION_NONCE: Final = f"{GROUP}/action-nonce"
#: On the frozen classifier copy: the full content digest it holds.
ANNOTATION_CLASSIFIER_DIGEST: Final = f"{GROUP}/classifier-digest"
#: On the frozen judge prompt copy: the template's content digest.
ANNOTATION_JUDGE_PROMPT_DIGEST: Final = f"{GROUP}/judge-prompt-digest"

#: Labels on every object the operator renders.
LABEL_POLICY: Final = f"{GROUP}/policy"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
MANAGED_BY: Final = "tierguard-operator"
FIELD_MANAGER: Final = "tierguard-operator"

#: Key of the router configuration inside the rendered ConfigMap.
ROUTER_CONFIG_KEY: Final = "router.yaml"

#: The router's pre-flight budget ledger file (router/mirrorbudget.py), and where the
#: operator's Deployment keeps it: the pod's emptyDir /tmp, which outlives a container
#: restart but not the pod; named after the pod (``$(POD_NAME)``, the Downward API), so
#: routers sharing one /tmp (the lab's local pods) never share a file.
ENV_ROUTER_BUDGET_LEDGER: Final = "TIERGUARD_ROUTER_BUDGET_LEDGER"
ROUTER_BUDGET_LEDGER: Final = "/tmp/tierguard-mirror-budget-$(POD_NAME).json"
