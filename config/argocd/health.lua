-- Argo CD health of an EtcdBackup (etcdbackup.io/v1alpha1), from the conditions the operator writes.
-- Runs in Argo CD's Lua 5.1; install as resource.customizations.health.etcdbackup.io_EtcdBackup
-- (config/argocd/argocd-cm-patch.yaml). test/integration/gitops-health.integ.test.ts runs it with lua5.1.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    conditions[condition.type] = condition
  end
end
local function is_true(type)
  return conditions[type] ~= nil and conditions[type].status == "True"
end
local function describe(condition)
  return condition.reason .. ": " .. (condition.message or "")
end
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Backups are suspended (spec.suspend is true)"
  return hs
end
if is_true("Stalled") then
  hs.status = "Degraded"
  hs.message = describe(conditions["Stalled"])
  return hs
end
if is_true("Reconciling") then
  hs.message = describe(conditions["Reconciling"])
  return hs
end
local ready = conditions["Ready"]
if ready == nil or ready.status == "Unknown" then
  return hs
end
if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
local verified = conditions["BackupVerified"]
if verified ~= nil and verified.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(verified)
  return hs
end
hs.status = "Healthy"
hs.message = ready.message
return hs
