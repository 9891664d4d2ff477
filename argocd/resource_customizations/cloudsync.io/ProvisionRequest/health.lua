-- Argo CD health check for cloudsync.io/v1alpha1 ProvisionRequest (cloudsync-operator).
--
-- Same constraints as the CloudSyncProfile check beside it: Argo CD's Lua VM without the open
-- libraries, so no string.*, math.* or os.* functions.
--
-- A ProvisionRequest runs once, like a Job:
--   1. no status or no Complete condition           -> Progressing "Waiting for the operator"
--   2. Complete=True, reason Success or Skipped     -> Healthy, Complete's message
--   3. Complete=True, reason Failure                -> Degraded, Complete's message
--   4. Complete=False, a reason that waits by itself (Running, Throttled, ProfileNotFound,
--      ProfileNotReady, GraphRequestFailed)        -> Progressing, Complete's message
--   5. Complete=False, any other reason (credentials the user must fix: SecretNotFound, ...)
--                                                   -> Degraded, Complete's message
-- The OutOfScope warning does not change health: the request did what it was asked.
local WAITING = {
  Running = true,
  Throttled = true,
  ProfileNotFound = true,
  ProfileNotReady = true,
  GraphRequestFailed = true,
}

local hs = { status = "Progressing", message = "Waiting for the operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local complete = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Complete" then
    complete = c
  end
end
if complete == nil then
  return hs
end
local message = complete.message or ""
if complete.status == "True" then
  if complete.reason == "Failure" then
    hs.status = "Degraded"
  else
    hs.status = "Healthy"
  end
  hs.message = message
  return hs
end
if WAITING[complete.reason] then
  hs.status = "Progressing"
else
  hs.status = "Degraded"
end
hs.message = message
return hs
