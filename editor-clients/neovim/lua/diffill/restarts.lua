-- The restart budget: a server that stopped on its own is started again at once while fewer
-- than `max` restarts fall within the last `window_s` seconds; after that the plugin gives up
-- and says so once, so a server that dies at start-up does not loop. :DiffillRestart resets it.
-- The same rule as the VS Code extension's src/restarts.ts. Also the placeholder client that
-- holds the buffers while no server runs.
local M = {}

local Budget = {}
Budget.__index = Budget

--- A budget of `max` restarts within any `window_s` seconds.
function M.new(max, window_s)
  return setmetatable({ max = max, window_s = window_s, times = {} }, Budget)
end

-- Restarts within the window ending at `now`, oldest first.
function Budget:recent(now)
  return vim.tbl_filter(function(time) return now - time < self.window_s end, self.times)
end

--- The server stopped at `now` (seconds): true grants a restart, false means give up.
function Budget:grant(now)
  self.times = self:recent(now)
  if #self.times >= self.max then
    return false
  end
  table.insert(self.times, now)
  return true
end

--- Restarts granted within the window ending at `now`.
function Budget:used(now)
  return #self:recent(now)
end

function Budget:reset()
  self.times = {}
end

--- Whether a process exit was a crash: not a clean exit or the SIGTERM that client:stop() sends
--- (Neovim's own rule for its "quit with exit code" warning).
function M.crashed(code, signal)
  return code ~= 0 or (signal ~= 0 and signal ~= 15)
end

--- The one message shown when the budget is spent; `exit` is the last crash's {code, signal}.
function M.give_up_message(budget, exit)
  local how = exit.signal ~= 0 and ("signal %d"):format(exit.signal) or ("exit code %d"):format(exit.code)
  local window = budget.window_s % 60 == 0 and ("%d minutes"):format(budget.window_s / 60)
    or ("%d seconds"):format(budget.window_s)
  return ("diffill: the server stopped %d times within %s (last: %s), so it is not restarted"
    .. " again. :checkhealth diffill shows why; :DiffillRestart starts it again.")
    :format(budget.max + 1, window, how)
end

--- `cmd` of a placeholder client: an in-process server that answers `initialize` with no
--- capabilities and nothing else. It holds the buffers after the plugin gave up, because
--- Neovim 0.11 stops sending a buffer's edits to every later client once the buffer is edited
--- with no client attached; :DiffillRestart's new server would never see those edits.
function M.placeholder(dispatchers)
  local closing = false
  local function close()
    if not closing then
      closing = true
      vim.schedule(function() dispatchers.on_exit(0, 0) end)
    end
  end
  return {
    request = function(method, _, callback)
      local result = method == "initialize" and { capabilities = {} } or vim.NIL
      vim.schedule(function() callback(nil, result) end)
      return true, 0
    end,
    notify = function(method)
      if method == "exit" then
        close()
      end
      return true
    end,
    is_closing = function() return closing end,
    terminate = close,
  }
end

return M
