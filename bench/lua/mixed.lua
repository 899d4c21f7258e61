-- A mixed workload, 70% reads: 35% the small user's first page, 35% get, 10% each create,
-- patch and toggle, drawn at random per request.
-- Argument: <data file>.
-- Finds common.lua next to this script, wherever wrk is started from.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local common = require("common")

local list_first_page, get_task, create_task, patch_task, toggle_task

function init(args)
  common.seed_random()
  local data = common.load(args[1])
  list_first_page = common.list_request(data, "list_first_page")
  get_task = common.get_request(data)
  create_task = common.create_request(data)
  patch_task = common.patch_request(data)
  toggle_task = common.toggle_request(data)
end

function request()
  local draw = math.random(100)
  if draw <= 35 then
    return list_first_page()
  elseif draw <= 70 then
    return get_task()
  elseif draw <= 80 then
    return create_task()
  elseif draw <= 90 then
    return patch_task()
  end
  return toggle_task()
end
