-- Argo CD health of a ctrain.dev/TrainingJob: one training run, judged like a batch Job.
--   status not yet written for metadata.generation -> Progressing
--   Pending, Running                               -> Progressing
--   Succeeded                                      -> Healthy (version, key metric, verdict)
--   Failed                                         -> Degraded (status.message)
-- A run whose model was not blessed (gates failed, champion kept) still Succeeded: the
-- run did its job and the champion is unchanged, so it is Healthy and the message says so.
-- Written for Argo CD's default sandbox (gopher-lua, Lua 5.1, base and table libraries
-- only): no string or math functions, and no globals besides `obj`.
local hs = {}

local function ready_message(status)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" and condition.message ~= nil and condition.message ~= "" then
      return condition.message
    end
  end
  return nil
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

local phase = status.phase
local message = status.message
if message == "" then
  message = nil
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  if status.modelVersion == nil then
    hs.message = "Succeeded: " .. (message or "training finished")
    return hs
  end
  local model = "?"
  if obj.spec ~= nil and obj.spec.model ~= nil then
    model = obj.spec.model
  end
  hs.message = "Succeeded: model " .. model .. " version " .. status.modelVersion
  if status.keyMetric ~= nil then
    hs.message = hs.message .. " (" .. status.keyMetric .. ")"
  end
  if status.decision ~= nil and status.decision ~= "" then
    hs.message = hs.message .. ": " .. status.decision
  end
  return hs
end

if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message or ready_message(status) or "Training failed"
  return hs
end

if phase == "Pending" then
  hs.status = "Progressing"
  hs.message = "Pending: " .. (message or "waiting for the training Job to start")
  return hs
end

if phase == "Running" then
  hs.status = "Progressing"
  hs.message = "Running: " .. (message or "training")
  return hs
end

if phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to start the run"
  return hs
end

-- A phase this check does not know (written by a newer operator): say so, do not guess.
hs.status = "Unknown"
hs.message = "Unknown phase " .. phase .. ": " .. (message or "no message")
return hs
