"""tierguard.router: the data plane (``tierguard router``).

Modules, each named for what it holds:

* ``app``: the aiohttp application (``create_app``), its routes, thin views and the one
  error middleware; ``cli``: the command; ``eventloop``: uvloop or asyncio;
* ``pipeline``: the request path of a chat completion, ``plan`` → ``call`` → ``account``
  (classification, split, the fallback chain's metrics, decision log, review, shadow);
* ``records``: the typed records passed along it (``Classification``, ``Planned``,
  ``Delivery``, ``Usage`` and ``usage_cost``, the one place cost is computed) (pure);
* ``relay``: writing the answer to the client (JSON, or the SSE stream relayed);
* ``runtime``: process-lifetime resources (``Runtime``, ``RUNTIME``), config generations
  (``apply_config``, ``reload_text``) and the app's startup/shutdown (``lifecycle``);
* ``feedback``: reading a feedback body (pure);
* ``chat``: request validation, what is classified, the upstream body (pure);
* ``conversation``: a routed request planned as a conversation turn (pure), built from
  ``session`` (the session key the arm is hashed from), ``tiering`` (a session's tier
  only goes up, per-message classifier cache), ``toolcalls`` (signed tool-call ids that
  lock a tool result to the model that issued the call) and ``ladder`` (fallbacks only
  upward, context-window escalation); ``turnmetrics``: what a turn adds to the metrics
  and the decision log;
* ``split``: the sticky hash split, arms and model chains (pure);
* ``decision_id``: signed response ids for feedback attribution (pure);
* ``errors``: the exception taxonomy and OpenAI error rendering (pure);
* ``sse``: decoding upstream event streams, telling their opening from content, and
  rewriting streamed chunks (pure);
* ``upstream``: pooled upstream sessions and one attempt (a JSON answer, or a stream up
  to its first content); ``chain``: the fallback chain and the hedge;
* ``state``: one loaded configuration generation;
* ``config_source``: the config file and ConfigMap watchers, and config parsing;
* ``metrics``: prometheus_client objects built from ``tierguard.api.metrics``;
* ``shadow`` (judges), ``shadowing`` (sampling and the background shadow call),
  ``review``, ``decision_log``: quality signals and audit trails.
"""
