"""The RoutingPolicy's limits and duration floors (split out of policy.py, which
re-exports them): each bounds a list in the CRD schema or becomes a CEL rule and a
pydantic check, so the API server and the operator refuse the same input."""

from __future__ import annotations

from tierguard.api import metrics as _metrics

MAX_TIERS = 8
MAX_MODELS = 32
MAX_FALLBACKS = 4
MAX_STEPS = 20
MAX_SLOS = 32
#: Slice gates (analysis.slices): at most this many slices, each with at most this many
#: declared values (plus ``other``). They bound the slice counters' cardinality
#: (docs/metrics.md) and the number of gates sharing the false-rollback budget.
MAX_SLICES = 5
MAX_SLICE_VALUES = 20
#: The value every request outside a slice's declared list counts under.
SLICE_OTHER = _metrics.SLICE_OTHER
#: Slice gates per policy: sliced SLOs (ErrorRate, ThumbsDown, ShadowDisagreement) x the
#: slices' values (each + other). Each gate keeps its e-process state in status.gateState
#: (a few kB with its per-router, per-cluster readings), so this bounds the status size.
MAX_SLICE_GATES = 64
SLICED_SIGNAL_NAMES = ("ErrorRate", "ThumbsDown", "ShadowDisagreement")
SLICE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
SLICE_VALUE_PATTERN = r"^[a-z0-9]([-_.a-z0-9]{0,61}[a-z0-9])?$"
#: The classifier head a ``source: Classifier`` slice reads (the model's ``categories``
#: output, labels in its ``tierguard.categories`` metadata).
CLASSIFIER_SLICE_KEY = "category"
DEFAULT_STEPS = [5.0, 10.0, 25.0, 50.0, 100.0]

# Floors on durations (each becomes a CEL rule and a pydantic check, see AtLeast). Zero
# would make the operator spin (interval), judge a step before it was ever evaluated
# (bakeTime), give up at once (noData.after, maxStepDuration, timeouts) or hedge every
# request (latencyBudget).
MIN_INTERVAL = "5s"
MIN_BAKE_TIME = "5s"
MIN_MAX_STEP_DURATION = "1m"
MIN_NO_DATA_AFTER = "10s"
MIN_TIMEOUT = "1s"
MIN_LATENCY_BUDGET = "100ms"
MIN_LATENCY_OBJECTIVE = "1ms"
MIN_REQUEST_DEADLINE = "1s"
MIN_FEEDBACK_TTL = "1m"
