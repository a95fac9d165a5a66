-- Argo CD health of a ctrain.dev/ModelDeployment: the serving of one model version.
--   status not yet written for metadata.generation       -> Progressing
--   Degraded=True or phase Degraded                      -> Degraded (the condition's reason and message)
--   phase Pending or Progressing, a canary, Progressing=True -> Progressing
--   phase Available with Ready=True                      -> Healthy (version, replicas, drift)
-- Degraded wins over Progressing: a failed canary that is being rolled back is reported
-- as the failure it is. Drift does not make a deployment unhealthy (it still serves; drift
-- is a trigger for retraining), so it is only mentioned in the message.
-- Written for Argo CD's default sandbox (gopher-lua, Lua 5.1, base and table libraries
-- only): no string or math functions, and no globals besides `obj`.
local hs = {}

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

local function is_true(condition)
  return condition ~= nil and condition.status == "True"
end

local function text(value)
  if value == nil or value == "" then
    return nil
  end
  return value
end

-- "Reason: message" of a condition, or nil when it has neither.
local function explain(condition)
  if condition == nil then
    return nil
  end
  local reason = text(condition.reason)
  local message = text(condition.message)
  if reason ~= nil and message ~= nil then
    return reason .. ": " .. message
  end
  return message or reason
end

-- A non-negative number with two decimals, built digit by digit: there is no
-- string.format here, and Lua 5.3+ would print an integral float as "31.0".
local DIGITS = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

local function two_decimals(value)
  local hundredths = value * 100 + 0.5
  hundredths = hundredths - hundredths % 1
  local digits = ""
  local position = 0
  repeat
    local digit = hundredths % 10
    digits = DIGITS[digit + 1] .. digits
    hundredths = (hundredths - digit) / 10
    position = position + 1
    if position == 2 then
      digits = "." .. digits
    end
  until position > 2 and hundredths < 1
  return digits
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

local spec = obj.spec or {}
local phase = status.phase
local message = text(status.message)
local ready = find_condition(status, "Ready")
local progressing = find_condition(status, "Progressing")
local degraded = find_condition(status, "Degraded")

local desired = status.replicas
if desired == nil then
  desired = spec.replicas
end
local replicas = (status.readyReplicas or 0) .. "/" .. (desired or "?") .. " replicas ready"

if is_true(degraded) or phase == "Degraded" then
  hs.status = "Degraded"
  if is_true(degraded) then
    hs.message = explain(degraded) or message or "Degraded"
  else
    hs.message = message or explain(ready) or "Degraded"
  end
  return hs
end

if text(status.canaryVersion) ~= nil then
  hs.status = "Progressing"
  local weight = nil
  if spec.strategy ~= nil and spec.strategy.canary ~= nil then
    weight = spec.strategy.canary.weight
  end
  hs.message = "Canary: version " .. status.canaryVersion
  if weight ~= nil then
    hs.message = hs.message .. " takes " .. weight .. "% of requests"
  else
    hs.message = hs.message .. " takes a share of requests"
  end
  if text(status.currentVersion) ~= nil then
    hs.message = hs.message .. ", version " .. status.currentVersion .. " the rest"
  end
  return hs
end

if phase == "Pending" or phase == "Progressing" or is_true(progressing) then
  hs.status = "Progressing"
  local detail = nil
  if is_true(progressing) then
    detail = text(progressing.message)
  end
  local prefix = "Progressing"
  if phase == "Pending" then
    prefix = "Pending"
  end
  hs.message = prefix .. ": " .. (detail or message or explain(ready) or replicas)
  return hs
end

if phase == "Available" then
  if not is_true(ready) then
    hs.status = "Progressing"
    hs.message = "Waiting for Ready: " .. (explain(ready) or message or replicas)
    return hs
  end
  hs.status = "Healthy"
  hs.message = "Serving version " .. (status.currentVersion or "?") .. " (" .. replicas .. ")"
  if status.drift ~= nil and status.drift.detected == true then
    hs.message = hs.message .. "; input drift detected"
    if type(status.drift.score) == "number" then
      hs.message = hs.message .. " (score " .. two_decimals(status.drift.score) .. ")"
    end
  end
  return hs
end

if phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a phase"
  return hs
end

-- A phase this check does not know (written by a newer operator): say so, do not guess.
hs.status = "Unknown"
hs.message = "Unknown phase " .. phase .. ": " .. (message or "no message")
return hs
