"""Gate statistics: peeking-safe tests of a canary arm against a control arm.

Pure functions (numpy and math only) so that every decision the operator takes can be
replayed in a unit test or a benchmark (``bench/detection`` drives exactly these
functions). No Kubernetes, kopf or Prometheus import may appear here.

What a gate judges
------------------
Every signal is a rate of *bad* outcomes per arm (thumbs-down among rated responses,
judge disagreements among shadow-judged requests, errors or escalations among requests,
requests slower than the latency objective). The operator feeds cumulative counter
readings per arm each interval; :func:`update` turns successive readings into block
deltas (:func:`counter_delta` handles counter resets) and adds each block to two kinds of
e-process:

* **Fail side** (roll back): H0 "the canary is no worse than control + ``fail_margin``"
  (default :func:`default_fail_margin`, half the SLO's allowed drop: a canary within
  that tolerated loss is rolled back with probability at most alpha) against a
  *mixture* of alternatives ``q_t = q_c + fail_margin + d`` for ``d`` on a grid around
  the SLO's allowed drop. The per-block e-value is the exact k-sample Bernoulli
  e-variable (see docs/statistics.md): it needs no normal approximation and no minimum
  sample size, and it stays valid when the base rate drifts from minute to minute and
  when the canary share changes between stages, so **one e-process runs across all
  stages on one alpha budget**. FAIL when the e-value reaches ``1/alpha_per_test``
  (Ville's inequality bounds the chance of that ever happening under H0 by alpha,
  however often it is looked at).
* **Pass side** (promote): for each margin ``m`` on a grid, an e-process for H0_m
  "canary - control >= m" with a predictable plug-in alternative. The upper confidence
  bound is the smallest grid margin from which every larger margin has been rejected;
  it is an anytime-valid confidence sequence (valid at every n, no asymptotics). PASS
  needs that bound within the allowed drop *and* a minimum number of samples per arm:
  silence is not evidence.

Why exact e-values instead of the Gaussian mixture SPRT: both keep false rollbacks near
alpha under per-minute looks, but the Gaussian versions are asymptotic (they need a
minimum n, and the normal approximation is unreliable for rare events such as a 1 %
error rate at a few hundred samples); the exact Bernoulli construction has no such
caveat, and comparable power (gate-statistics.md §4: median 576 vs 651 canary samples
to detect 10 % -> 15 % at 1:1, both with power 0.98).

The plug-in control rate uses the *control* arm's earlier blocks only (the note in
gate-statistics.md pools both arms): under a real loss pooling drags the estimate towards
the canary, which shrinks the bet; under the null both are valid because the estimate is
fixed before the block is seen.

Layout (split for size; every name stays importable from here):
:mod:`~tierguard.operator.gatecounters` (counter readings to blocks, resets per series),
:mod:`~tierguard.operator.evalues` (the vectorised e-value kernels, the shifted-null
construction, alpha sharing), :mod:`~tierguard.operator.gatestate` (a gate's state and
its update), :mod:`~tierguard.operator.gateverdicts` (verdicts, absolute objectives),
:mod:`~tierguard.operator.absolutebounds` (the one-arm confidence sequence) and
:mod:`~tierguard.operator.paired` (the pairwise judge's paired test).
"""

from __future__ import annotations

from tierguard.operator.absolutebounds import absolute_bounds as absolute_bounds
from tierguard.operator.evalues import DEFAULT_MARGINS as DEFAULT_MARGINS
from tierguard.operator.evalues import PLUGIN_SHRINK as PLUGIN_SHRINK
from tierguard.operator.evalues import Q_MAX as Q_MAX
from tierguard.operator.evalues import Q_MIN as Q_MIN
from tierguard.operator.evalues import ArrayLike as ArrayLike
from tierguard.operator.evalues import FloatArray as FloatArray
from tierguard.operator.evalues import Grid as Grid
from tierguard.operator.evalues import alpha_per_test as alpha_per_test
from tierguard.operator.evalues import default_fail_margin as default_fail_margin
from tierguard.operator.evalues import fail_block_log_e as fail_block_log_e
from tierguard.operator.evalues import fail_grid as fail_grid
from tierguard.operator.evalues import log_mean_exp as log_mean_exp
from tierguard.operator.evalues import pass_block_log_e as pass_block_log_e
from tierguard.operator.evalues import plugin_control_rate as plugin_control_rate
from tierguard.operator.evalues import shifted_block_log_e as shifted_block_log_e
from tierguard.operator.evalues import upper_bound_from_rejections as upper_bound_from_rejections
from tierguard.operator.gatecounters import ArmReading as ArmReading
from tierguard.operator.gatecounters import Block as Block
from tierguard.operator.gatecounters import GateInputError as GateInputError
from tierguard.operator.gatecounters import block_from_readings as block_from_readings
from tierguard.operator.gatecounters import (
    cluster_block_from_readings as cluster_block_from_readings,
)
from tierguard.operator.gatecounters import counter_delta as counter_delta
from tierguard.operator.gatecounters import series_delta as series_delta
from tierguard.operator.gatestate import ClusterBlock as ClusterBlock
from tierguard.operator.gatestate import GateState as GateState
from tierguard.operator.gatestate import Kind as Kind
from tierguard.operator.gatestate import add_block as add_block
from tierguard.operator.gatestate import add_clusters as add_clusters
from tierguard.operator.gatestate import new_gate_state as new_gate_state
from tierguard.operator.gatestate import rebase as rebase
from tierguard.operator.gatestate import update as update
from tierguard.operator.gateverdicts import GateResult as GateResult
from tierguard.operator.gateverdicts import combine_verdicts as combine_verdicts
from tierguard.operator.gateverdicts import evaluate as evaluate
from tierguard.operator.gateverdicts import evaluate_absolute as evaluate_absolute
from tierguard.operator.gateverdicts import relative_upper_bound as relative_upper_bound
from tierguard.operator.paired import PairedResult as PairedResult
from tierguard.operator.paired import PairedState as PairedState
from tierguard.operator.paired import evaluate_paired as evaluate_paired
from tierguard.operator.paired import new_paired_state as new_paired_state
from tierguard.operator.paired import paired_update as paired_update
