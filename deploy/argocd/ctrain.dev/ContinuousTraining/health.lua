-- Argo CD health of a ctrain.dev/ContinuousTraining: the retraining loop.
--   status not yet written for metadata.generation  -> Progressing
--   spec.suspend is true                            -> Suspended
--   Ready=False with a failure reason               -> Degraded (the condition's reason and message)
--   no champion yet                                 -> Progressing (Ready=False NoChampion)
--   a run in progress                               -> Healthy (the message names the run)
--   the latest finished run failed                  -> Degraded
--   otherwise (waiting for a trigger)               -> Healthy
-- A loop waiting for its next trigger is doing its job, and so is a loop with a run in
-- progress: runs are the loop's normal work (the run itself is a TrainingJob with its own
-- health), and reporting Progressing for every nightly run would make the Application
-- flap. Like Argo CD's CronJob check, a failed latest run makes the loop Degraded until a
-- run succeeds: the champion is no longer being refreshed, and someone should look.
-- Before its first champion a loop has not reached its goal (nothing can be served):
-- Progressing, as kstatus reads the operator's Reconciling=True.
-- Written for Argo CD's default sandbox (gopher-lua, Lua 5.1, base and table libraries
-- only): no string or math functions, and no globals besides `obj`.
local hs = {}

-- Ready reasons that mean the loop is broken (ctrain.api.Reason); any other reason for
-- Ready=False (Idle, RunActive, Triggered, ConcurrencyForbidden, ...) is a waiting state.
local failure_reasons = {
  RunFailed = true,
  InvalidSpec = true,
  StorageError = true,
  DatasetNotFound = true,
  DatasetUnreadable = true,
  DataValidationFailed = true,
  UnknownEstimator = true,
  InvalidParams = true,
  TrainingFailed = true,
  JobFailed = true,
  DeadlineExceeded = true,
  BackoffLimitExceeded = true,
  NoTerminationMessage = true,
  VersionNotFound = true,
}

local function find_condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function text(value)
  if value == nil or value == "" then
    return nil
  end
  return value
end

local function champion_text(status)
  if status.champion ~= nil and text(status.champion.version) ~= nil then
    return "champion is version " .. status.champion.version
  end
  return "no champion yet"
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. generation
  else
    hs.message = "Waiting for the operator to report status"
  end
  return hs
end

local active = text(status.activeRun)

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: no run starts while spec.suspend is true"
  if active ~= nil then
    hs.message = hs.message .. "; run " .. active .. " is still training"
  end
  hs.message = hs.message .. "; " .. champion_text(status)
  return hs
end

local ready = find_condition(status, "Ready")
if ready ~= nil and ready.status == "False" and failure_reasons[ready.reason] then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (text(ready.message) or text(status.message) or "failed")
  return hs
end

local has_champion = status.champion ~= nil and text(status.champion.version) ~= nil
if not has_champion and status.lastRunPhase ~= "Failed" then
  hs.status = "Progressing"
  if active ~= nil then
    hs.message = "No champion yet; run " .. active .. " is training"
  else
    hs.message = "No champion yet; waiting for a trigger"
  end
  return hs
end

if active ~= nil then
  hs.status = "Healthy"
  hs.message = "Run " .. active .. " is training; " .. champion_text(status)
  return hs
end

if status.lastRunPhase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Last run " .. (text(status.lastRun) or "?") .. " failed"
  if text(status.message) ~= nil then
    hs.message = hs.message .. ": " .. status.message
  end
  return hs
end

hs.status = "Healthy"
hs.message = "Waiting for a trigger; " .. champion_text(status)
if text(status.lastRun) ~= nil then
  hs.message = hs.message .. "; last run " .. status.lastRun .. " " .. (status.lastRunPhase or "finished")
end
return hs
