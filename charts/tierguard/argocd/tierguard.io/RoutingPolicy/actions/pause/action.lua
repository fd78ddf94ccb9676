-- Argo CD resource action "pause" for tierguard.io/RoutingPolicy: the same as
-- `kubectl tierguard pause`. Sets the action annotation and a fresh nonce; the operator
-- acts once per distinct (action, nonce) and records it in status.lastHandledAction.
-- The nonce is the time plus the object's resourceVersion, so two clicks in the same
-- second on a changed object still differ.
--
-- Argo CD runs actions without Lua's standard libraries: there is no global `os`; its
-- safe os library (time and date only) is reached through require, as Argo CD's own
-- built-in actions do.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local version = ""
if obj.metadata.resourceVersion ~= nil then
  version = "-" .. obj.metadata.resourceVersion
end
obj.metadata.annotations["tierguard.io/action"] = "pause"
obj.metadata.annotations["tierguard.io/action-nonce"] = "argocd-" .. tostring(os.time()) .. version
return obj
