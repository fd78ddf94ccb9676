-- Argo CD resource-action discovery for tierguard.io/RoutingPolicy.
--
-- Offers the five manual actions of `kubectl tierguard` and enables each only in the
-- phases where the operator acts on it (it ignores, and records as InvalidAction, an
-- action that does not apply; disabling it here just keeps the UI honest).
local actions = {}
local phase = ""
if obj.status ~= nil and obj.status.phase ~= nil then
  phase = obj.status.phase
end

local function enabled_in(phases)
  for _, p in ipairs(phases) do
    if p == phase then
      return true
    end
  end
  return false
end

-- The same phase checks as the operator's (tierguard.operator.rollout): promote advances
-- a live stage, abort rolls back a live or promoted rollout, retry restarts a rolled-back
-- revision, pause holds a stage in flight, resume continues a paused one.
actions["promote"] = {["disabled"] = not enabled_in({"Progressing", "Paused"})}
actions["abort"] = {["disabled"] = not enabled_in({"Progressing", "Paused", "Promoted"})}
actions["retry"] = {["disabled"] = not enabled_in({"RolledBack"})}
actions["pause"] = {["disabled"] = not enabled_in({"Progressing"})}
actions["resume"] = {["disabled"] = not enabled_in({"Paused"})}
return actions
