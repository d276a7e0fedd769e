-- Argo CD health of FHIRDatastore, FHIRImportJob and FHIRExportJob, from the operator's kstatus
-- conditions. Argo CD runs it with gopher-lua (Lua 5.1): `obj` is the object, the result a table
-- with `status` (Healthy, Progressing, Degraded) and `message`.
--   no status yet, or status.observedGeneration behind metadata.generation -> Progressing
--   Stalled=True (only a person can fix it)                                 -> Degraded
--   Ready=True (even while a read waits: the last observation stands)       -> Healthy
--   Reconciling=True (creating, deleting, queued, running, waiting)         -> Progressing
local health = { status = "Progressing", message = "Waiting for the operator to report status" }

local function describe(condition)
  local text = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if obj.status == nil or obj.status.conditions == nil then
  return health
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  health.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return health
end

local found = {}
for _, condition in ipairs(obj.status.conditions) do
  if condition.type ~= nil then
    found[condition.type] = condition
  end
end

if found.Stalled ~= nil and found.Stalled.status == "True" then
  health.status = "Degraded"
  health.message = describe(found.Stalled)
  return health
end
if found.Ready ~= nil and found.Ready.status == "True" then
  health.status = "Healthy"
  health.message = describe(found.Ready)
  return health
end
if found.Reconciling ~= nil and found.Reconciling.status == "True" then
  health.message = describe(found.Reconciling)
  return health
end
if found.Ready ~= nil then
  health.message = describe(found.Ready)
end
return health
