-- Argo CD health check for tierguard.io/RoutingPolicy.
--
-- Maps the operator's status to Argo CD health so an Application shows a rollout as it
-- is: a stage in flight is Progressing, a rollout waiting for a person is Suspended, a
-- promoted candidate is Healthy, a rollback or an unreconcilable policy is Degraded.
-- Unlike Flagger's check, no phase falls through to Unknown: a phase this script does
-- not know (a newer operator) is reported as Degraded with the phase named, so a
-- version skew is visible instead of silently grey.
--
-- Written for Argo CD's sandbox (gopher-lua, Lua 5.1): only base functions, `table` and
-- a safe `os` are available, so no `string.*` calls are used.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function describe(status, fallback)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  return fallback
end

local function position(status)
  local out = ""
  if status.stepDisplay ~= nil and status.stepDisplay ~= "" then
    out = "step " .. status.stepDisplay
  end
  if status.canaryWeight ~= nil then
    if out ~= "" then
      out = out .. ", "
    end
    out = out .. "canary weight " .. tostring(status.canaryWeight) .. "%"
  end
  if status.verdictSummary ~= nil and status.verdictSummary ~= "" then
    if out ~= "" then
      out = out .. ", "
    end
    out = out .. status.verdictSummary
  end
  return out
end

local function with_position(status, text)
  local pos = position(status)
  if pos == "" then
    return text
  end
  return text .. " (" .. pos .. ")"
end

local function preflight_state(status)
  if status.preflight == nil or status.preflight.state == nil then
    return ""
  end
  return status.preflight.state
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the tierguard operator to observe the policy"
  return hs
end

local observed = status.observedGeneration
if observed == nil or observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the tierguard operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
if phase == nil or phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the tierguard operator to set a phase"
elseif phase == "Pending" then
  local ready = condition(status, "Ready")
  local progressing = condition(status, "Progressing")
  local nothing_to_do = progressing ~= nil and progressing.reason == "NoCandidate"
  if nothing_to_do or (ready ~= nil and ready.status == "True") then
    -- No route has a candidate: the baseline serves every tier and the policy is as
    -- healthy as it will get. Reporting Progressing here would hold an Argo CD sync
    -- (and its later waves) forever.
    hs.status = "Healthy"
    hs.message = describe(status, "Pending: nothing to roll out; the baseline serves every tier")
  else
    hs.status = "Progressing"
    hs.message = "Pending: " .. describe(status, "the rollout has not started yet")
  end
elseif phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = with_position(status, describe(status, "Rollout in progress"))
  if preflight_state(status) == "Running" then
    -- Pre-flight: the candidate answers mirrored requests only; nobody is served by it.
    hs.message = "Pre-flight (0 users exposed): " .. hs.message
  end
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = with_position(status, describe(status, "Rollout paused; promote, resume or abort"))
  local pf = preflight_state(status)
  if pf == "Held" or pf == "Running" or pf == "Passed" and status.canaryWeight == 0 then
    hs.message = "Pre-flight paused (0 users exposed): " .. hs.message
  end
elseif phase == "Promoted" then
  hs.status = "Healthy"
  hs.message = describe(status, "Candidate promoted")
elseif phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = "Rolled back: " .. describe(status, "a gate failed or the rollout was aborted")
elseif phase == "Failed" then
  local degraded = condition(status, "Degraded")
  local why = "the operator cannot reconcile this policy"
  if degraded ~= nil and degraded.message ~= nil and degraded.message ~= "" then
    why = degraded.message
  end
  hs.status = "Degraded"
  hs.message = "Failed: " .. describe(status, why)
else
  hs.status = "Degraded"
  hs.message = "Unknown phase " .. tostring(phase)
    .. ": this health check is older than the tierguard operator; update the Argo CD customization"
end
return hs
