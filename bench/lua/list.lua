-- One fixed GET, the same request every time: a list page (GET /api/tasks?...), /health or /api/me.
-- Arguments: <data file> <path name> (list_first_page, list_deep_cursor, list_filtered, health,
-- auth_me).
-- Finds common.lua next to this script, wherever wrk is started from.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local common = require("common")

local make_request

function init(args)
  make_request = common.list_request(common.load(args[1]), args[2])
end

function request()
  return make_request()
end
