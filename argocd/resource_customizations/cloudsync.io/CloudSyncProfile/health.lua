-- Argo CD health check for cloudsync.io/v1alpha1 CloudSyncProfile (cloudsync-operator).
--
-- Written for Argo CD's Lua VM (gopher-lua, Lua 5.1) *without* the open libraries, which is how
-- argocd-cm runs a custom check by default: only base, table, package and a safe os are loaded, so
-- this script uses no string.*, math.* or os.* functions (only `..`, `tostring`, `ipairs`).
--
-- Evaluated in this order; the first rule that matches wins:
--   1. no status                                      -> Progressing "Waiting for the operator"
--   2. status.observedGeneration (or the Ready condition's) < metadata.generation
--                                                     -> Progressing "Waiting for the operator to observe generation N"
--   3. no conditions, or no Ready condition           -> Progressing "Waiting for the operator"
--   4. Suspended=True  (spec.suspend)                 -> Suspended, the Suspended condition's message
--   5. Degraded=True   (a job quarantined or failing, deletes held, duplicate jobs)
--                                                     -> Degraded, the Degraded condition's message
--   6. Ready=True                                     -> Healthy, Ready's message (the jobs' codes)
--   7. Ready=False with a reason that needs the user  -> Degraded, Ready's message
--   8. anything else (transient or progress reasons)  -> Progressing, Ready's message
-- A Suspended or Degraded condition written for an older generation is ignored (its
-- observedGeneration is behind metadata.generation), so a stale condition never wins.
--
-- Condition reasons, kept in sync with the operator's one list of them (src/reconcile/reason.rs;
-- tests/argocd_health.rs fails when this table and that list differ):
--   need the user (Ready=False -> Degraded):
--     SecretNotFound, SecretInvalid, NoCredentials, WorkloadIdentityNotAllowed,
--     WorkloadIdentityUnavailable            (src/reconcile/credentials.rs)
--     CredentialsRejected, GraphUnauthorized, GraphForbidden, GraphRequestRejected,
--     AmbiguousServicePrincipal, ConfigurationClaimed (src/reconcile/apply.rs)
--     OwnedElsewhere                         (src/reconcile/ownership.rs: another install's owner tag)
--     CleanupBlocked                         (src/reconcile/cleanup.rs)
--     UnreadableSpec                         (src/controller/unreadable.rs: a CRD newer than the operator)
--     Quarantined, ExecutionFailed, DuplicateJobs, DeletesHeld (src/reconcile/status.rs;
--                                            normally caught by rule 5 through the Degraded
--                                            condition already)
--     AgentUnavailable                       (a job error code that means no provisioning agent
--                                            serves the domain; src/reconcile/agents.rs)
--     InvalidExpression                      (an attribute mapping's expression that Graph's
--                                            parseExpression refuses; the SchemaApplied condition)
--   transient or progress (Ready=False -> Progressing):
--     Creating, WaitingForCredentials, InstantiatePending, JobsMissing, NotRunning,
--     NoServicePrincipal, Suspended, Retrying, SchemaPending
--   Any reason not listed here is treated as Progressing.
-- Note: Argo CD itself reports an object with metadata.deletionTimestamp as Progressing
-- "Pending deletion" without running this script; rule 7 (CleanupBlocked) is what
-- `argocd admin settings resource-overrides health` and direct script runs show.

local USER_ACTION = {
  SecretNotFound = true,
  SecretInvalid = true,
  NoCredentials = true,
  WorkloadIdentityNotAllowed = true,
  WorkloadIdentityUnavailable = true,
  CredentialsRejected = true,
  GraphUnauthorized = true,
  GraphForbidden = true,
  GraphRequestRejected = true,
  AmbiguousServicePrincipal = true,
  ConfigurationClaimed = true,
  OwnedElsewhere = true,
  CleanupBlocked = true,
  UnreadableSpec = true,
  Quarantined = true,
  ExecutionFailed = true,
  DuplicateJobs = true,
  InvalidExpression = true,
  DeletesHeld = true,
  AgentUnavailable = true,
}

local WAITING = "Waiting for the operator"

local function result(status, message)
  return { status = status, message = message }
end

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function messageOf(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return condition.type
end

local function check()
  local generation = nil
  if obj.metadata ~= nil then
    generation = obj.metadata.generation
  end
  local status = obj.status
  if status == nil then
    return result("Progressing", WAITING)
  end
  local conditions = status.conditions
  local ready = findCondition(conditions, "Ready")

  local function behind(observed)
    return generation ~= nil and observed ~= nil and observed < generation
  end
  if behind(status.observedGeneration) or (ready ~= nil and behind(ready.observedGeneration)) then
    return result("Progressing", WAITING .. " to observe generation " .. tostring(generation))
  end
  if ready == nil then
    return result("Progressing", WAITING)
  end

  local function isTrue(condition)
    return condition ~= nil and condition.status == "True" and not behind(condition.observedGeneration)
  end
  local suspended = findCondition(conditions, "Suspended")
  if isTrue(suspended) then
    return result("Suspended", messageOf(suspended))
  end
  local degraded = findCondition(conditions, "Degraded")
  if isTrue(degraded) then
    return result("Degraded", messageOf(degraded))
  end
  if ready.status == "True" then
    return result("Healthy", messageOf(ready))
  end
  if ready.status == "False" and ready.reason ~= nil and USER_ACTION[ready.reason] then
    return result("Degraded", messageOf(ready))
  end
  return result("Progressing", messageOf(ready))
end

return check()
