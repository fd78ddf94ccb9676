-- Argo CD resource action "retry" for tierguard.io/RoutingPolicy: the same as
-- `kubectl tierguard retry`. Sets the action annotation and a fresh nonce; the operator
-- acts once per distinct (action, nonce) and records it in status.lastHandledAction.
-- The nonce is the time (os.time is in Argo CD's safe os library) plus the object's
-- resourceVersion, so two clicks in the same second on a changed object still differ.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local version = ""
if obj.metadata.resourceVersion ~= nil then
  version = "-" .. obj.metadata.resourceVersion
end
obj.metadata.annotations["tierguard.io/action"] = "retry"
obj.metadata.annotations["tierguard.io/action-nonce"] = "argocd-" .. tostring(os.time()) .. version
return obj
