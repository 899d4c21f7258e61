-- PATCH /api/tasks/{id}: a new title and priority for a random task of the big user.
-- Argument: <data file>.
-- Finds common.lua next to this script, wherever wrk is started from.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local common = require("common")

local make_request

function init(args)
  common.seed_random()
  make_request = common.patch_request(common.load(args[1]))
end

function request()
  return make_request()
end
