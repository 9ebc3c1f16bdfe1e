-- :checkhealth diffill: Neovim version, the server command (found, and answering LSP
-- initialize + diffill/status), the model folder and the configuration issues from setup().
local M = {}
local H = {}

local health = vim.health

function H.frame(message)
  local body = vim.json.encode(vim.tbl_extend("force", { jsonrpc = "2.0" }, message))
  return ("Content-Length: %d\r\n\r\n%s"):format(#body, body)
end

-- The responses found in a raw LSP byte stream, by request id.
function H.responses(stdout)
  local found, pos = {}, 1
  while true do
    local _, length_end, length = stdout:find("Content%-Length: (%d+)\r\n", pos)
    local _, header_end = stdout:find("\r\n\r\n", (length_end or #stdout) - 1, true)
    if not header_end then
      return found
    end
    pos = header_end + 1 + tonumber(length)
    local ok, msg = pcall(vim.json.decode, stdout:sub(header_end + 1, pos - 1))
    if ok and type(msg) == "table" and msg.id then
      found[msg.id] = msg
    end
  end
end

-- Ask `diffill/status` (as request `id`) until the model is no longer loading; the last answer.
function H.wait_loaded(proc, read, gone, id)
  local deadline = vim.uv.now() + 60000
  while true do
    proc:write(H.frame({ id = id, method = "diffill/status", params = vim.empty_dict() }))
    vim.wait(deadline - vim.uv.now(), function() return gone() or read()[id] ~= nil end, 50)
    local status = read()[id] and read()[id].result
    if not status or status.state ~= "loading" or vim.uv.now() > deadline then
      return status
    end
    vim.wait(200)
    id = id + 1
  end
end

-- Start the server once, as the editor would: its initialize answer and its loaded status.
-- stdin stays open until the answers are in: at end of input the server stops at once.
function H.probe(cmd, settings)
  local out, exited = "", nil
  local ok, proc = pcall(vim.system, cmd, {
    stdin = true,
    stdout = function(_, data) out = out .. (data or "") end,
  }, function(result) exited = result end)
  if not ok then
    return nil, tostring(proc)
  end
  local function read() return H.responses(out) end
  local function gone() return exited ~= nil end
  proc:write(H.frame({ id = 1, method = "initialize", params = {
    processId = vim.NIL, rootUri = vim.NIL, capabilities = vim.empty_dict(),
    initializationOptions = require("diffill.config").server_settings(settings),
  } }) .. H.frame({ method = "initialized", params = vim.empty_dict() }))
  local status = H.wait_loaded(proc, read, gone, 2)
  if not exited then
    proc:write(H.frame({ id = 0, method = "shutdown" }) .. H.frame({ method = "exit" }))
    proc:write(nil)
    exited = proc:wait(10000)
  end
  local init = H.responses(out)[1]
  if not init then
    local stderr = vim.trim(exited.stderr or "")
    return nil, ("exit %s, no initialize reply: %s"):format(exited.code, stderr)
  end
  return init.result or {}, status or {}
end

function H.check_version()
  local v = vim.version()
  if vim.fn.has("nvim-0.10") == 0 then
    health.error(("Neovim %s is too old: 0.10 or newer is needed"):format(tostring(v)))
  elseif vim.lsp.inline_completion then
    local line = "Neovim %s: built-in vim.lsp.inline_completion draws the suggestions"
    health.ok(line:format(tostring(v)))
  else
    health.ok(("Neovim %s: diffill draws the ghost text (extmarks)"):format(tostring(v)))
  end
end

function H.check_model(settings, status)
  local path = settings.model and settings.model.path or ""
  if status.state == "failed" then
    health.error("the server could not load the model: " .. tostring(status.error))
  elseif status.state == "loading" then
    health.info("the model was still loading when the server answered")
  end
  if path == "" then
    local model = type(status.model) == "table" and (status.model.name or status.model.model)
    health.ok("model: the server's embedded model" .. (model and (" (" .. model .. ")") or ""))
  elseif vim.fn.isdirectory(path) == 0 then
    health.error("model.path is not a folder: " .. path)
  elseif vim.fn.filereadable(path .. "/config.json") == 0 then
    health.error("model folder has no config.json: " .. path)
  else
    health.ok("model folder: " .. path)
  end
end

function H.check_server(config)
  local exe = config.cmd[1]
  if vim.fn.executable(exe) == 0 then
    local advice = { "pip install diffill, or set cmd" }
    health.error(("server command not found: %s"):format(exe), advice)
    return {}
  end
  health.ok("server command: " .. table.concat(config.cmd, " "))
  local result, status = H.probe(config.cmd, config.settings)
  if not result then
    health.error("the server did not answer initialize: " .. status)
    return {}
  end
  local info = result.serverInfo or {}
  if not (result.capabilities or {}).inlineCompletionProvider then
    health.warn("the server does not advertise inline completion")
  end
  health.ok(("server started: %s %s"):format(info.name or "?", info.version or ""))
  return status
end

function M.check()
  health.start("diffill")
  H.check_version()
  local diffill = require("diffill")
  local config = diffill.config
  if not config then
    health.warn("setup() was not called; checking the default options")
    config = require("diffill.config").resolve({})
  end
  for _, issue in ipairs(diffill.issues) do
    health.warn("config: " .. issue)
  end
  if #diffill.issues == 0 then
    health.ok("config: no issues")
  end
  local status = H.check_server(config)
  H.check_model(config.settings, status)
end

return M
