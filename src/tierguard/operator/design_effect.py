"""Design effect: how much per-user clustering inflates the variance of a bad rate.

The router assigns whole users to an arm (``bucket = sha256(salt + key) mod 10000``), so
one user's requests are not independent draws: a user who dislikes the answers
thumbs-down many of them. Counting requests as independent then overstates the
evidence, and an A/A rollout is rolled back far more often than alpha (issue 13: 5.7 %
at an intra-user correlation of 0.02, 23 % at 0.05, against a 1 % budget).

The routers therefore export the gate counters per *cluster*, ``bucket mod K`` (label
``cluster``, :data:`tierguard.api.metrics.CLUSTERS` values). A bucket holds whole users,
so clusters are disjoint sets of users and independent of each other, whatever happens
inside a user. From the per-cluster cumulative counts of each arm the operator
estimates the **design effect** (Kish; the Pearson dispersion of clustered binomial
counts, Rao & Scott 1992)::

    D = sum over arms a and clusters k of (bad_ak - n_ak p_a)^2 / (n_ak p_a (1 - p_a))
        / (sum over arms of (clusters with outcomes - 1))

which is ~1 for independent outcomes and ``1 + (m - 1) rho`` when every user sent ``m``
requests with intra-user correlation ``rho``. It grows as users come back during a
rollout, and it is estimated per arm around each arm's own rate, so a real difference
between the arms does not inflate it.

:func:`tierguard.operator.statistics.add_block` divides the gate's log e-values by ``D``
(tempering). For the normal approximation that is exact: ``exp(l S - l^2 V / 2)`` with
the variance ``V`` understated by the factor ``D`` becomes, raised to ``1/D``,
``exp(l' S - l'^2 (D V) / 2)`` with ``l' = l / D``, the bet that knows the true variance.
It is equivalent to Rao and Scott's "divide the counts by the design effect". It is an
approximation -- the exact, any-n guarantee of the unclustered test holds only at
``D = 1`` -- so its error rate is measured by an A/A study across intra-user correlations
in ``bench/detection`` (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Series keys of clustered readings are ``"<instance>#<cluster>"``.
CLUSTER_SEP = "#"
#: Below this many degrees of freedom (clusters with outcomes, minus one per arm) the
#: estimate is too noisy to use and the design effect is taken as 1 (nothing counted
#: yet, or an arm without cluster breakdown).
MIN_DF = 4
#: Events (an arm's rarer outcome: bad, or good when the rate is above one half) needed
#: before an arm's clusters are used. With rarer events the dispersion says where the few
#: events fell, not how users correlate: a single bad outcome in a cluster with half the
#: average requests reads as a design effect of ~2 and halves a healthy canary's
#: evidence (the chi-square rule of thumb asks for expected counts of about 5 per cell;
#: 10 events over >= 5 clusters is the same order). An arm below it adds neither
#: dispersion nor degrees of freedom; with no arm above it the design effect is 1.
#: The pairwise gate applies the same minimum to its non-tie pairs.
MIN_DESIGN_EVENTS = 10
#: Upper clip: beyond it the counts carry almost no information and the gate should
#: simply wait (a bound, not a tuning knob).
MAX_DESIGN_EFFECT = 1000.0


def cluster_of(series_key: str) -> str:
    """The cluster a series key belongs to ("" for a reading without clusters)."""
    _, sep, cluster = series_key.rpartition(CLUSTER_SEP)
    return cluster if sep else ""


def split_by_cluster(series: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """``{series key: value}`` grouped as ``{cluster: {series key: value}}``."""
    out: dict[str, dict[str, float]] = {}
    for key, value in series.items():
        out.setdefault(cluster_of(key), {})[key] = value
    return out


def design_effect(bad: npt.ArrayLike, total: npt.ArrayLike) -> FloatArray:
    """Pooled Pearson dispersion of per-cluster counts, at least 1.

    ``bad`` and ``total`` have shape ``(..., arms, clusters)``: cumulative outcomes per
    arm and cluster. Each arm is centred on its own rate; cells without outcomes, arms
    whose rate is 0 or 1 and arms with fewer than :data:`MIN_DESIGN_EVENTS` events (of
    their rarer outcome) add nothing. Vectorised over leading axes (the detection
    study runs thousands of gates through it).
    """
    b = np.asarray(bad, dtype=float)
    n = np.asarray(total, dtype=float)
    n_arm = n.sum(axis=-1, keepdims=True)
    p = np.divide(b.sum(axis=-1, keepdims=True), n_arm, out=np.zeros_like(n_arm), where=n_arm > 0)
    bad_arm = b.sum(axis=-1, keepdims=True)
    events = np.minimum(bad_arm, n_arm - bad_arm)
    var = np.where(events >= MIN_DESIGN_EVENTS, n * p * (1.0 - p), 0.0)
    x2 = np.divide((b - n * p) ** 2, var, out=np.zeros_like(var), where=var > 0).sum(axis=-1)
    informative = (var > 0).sum(axis=-1)
    df = np.maximum(informative - 1, 0).sum(axis=-1)
    x2_sum = x2.sum(axis=-1)
    d = np.divide(x2_sum, df, out=np.ones_like(x2_sum), where=df >= MIN_DF)
    return np.asarray(np.clip(d, 1.0, MAX_DESIGN_EFFECT), dtype=float)
