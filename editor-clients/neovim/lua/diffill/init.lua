-- diffill: local fill-in-the-middle completions from the `diffill lsp` language server.
-- Public API only; the ghost text lives in diffill.ghost, options in diffill.config.
--   require("diffill").setup({ ... })   see :help diffill-config
local M = {}
local H = {}

local api = vim.api
local ghost = require("diffill.ghost")
local compat = require("diffill.compat")
local restarts = require("diffill.restarts")
local options = require("diffill.config")
local PLACEHOLDER = "diffill (stopped)" -- the client that holds the buffers after giving up

M.config = nil -- the resolved options, set by setup()
M.issues = {} -- configuration problems found by setup(), shown by :checkhealth diffill
M.enabled = true
M.crash = nil -- {code, signal} of the last server that stopped on its own, until restarted
M.budget = nil -- the restart budget (diffill.restarts), set by setup()

--- Validate the options, then start the server for matching buffers (also those already open).
function M.setup(opts)
  M.config, M.issues = options.resolve(opts)
  ghost.config = M.config
  M.budget = restarts.new(M.config.max_restarts, M.config.restart_window_s)
  M.crash, H.told = nil, false
  for _, issue in ipairs(M.issues) do
    vim.notify("(diffill) " .. issue, vim.log.levels.WARN)
  end
  local group = H.create_autocommands()
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) then
      H.start(bufnr)
      if M.client(bufnr) then
        H.attach(bufnr, group) -- setup() again: the cleared group loses the buffer autocmds
      end
    end
  end
end

--- The running diffill client attached to `bufnr` (default: current buffer), or nil.
function M.client(bufnr)
  for _, client in ipairs(vim.lsp.get_clients({ bufnr = bufnr or 0, name = "diffill" })) do
    if not compat.call(client, "is_stopped") then
      return client
    end
  end
  return nil
end

--- Stop the diffill servers and start new ones for every matching buffer, with the whole
--- restart budget (also after the plugin gave up on a server that kept stopping).
function M.restart()
  if M.config == nil then
    vim.notify("diffill: call require('diffill').setup() first", vim.log.levels.WARN)
    return
  end
  for _, name in ipairs({ "diffill", PLACEHOLDER }) do
    for _, client in ipairs(vim.lsp.get_clients({ name = name })) do
      compat.call(client, "stop")
    end
  end
  M.budget:reset()
  M.crash, H.told = nil, false
  H.start_all()
end

--- One line from the server's `diffill/status`: model, runtime, mode, last latency, accepts.
function M.status()
  local client = M.client()
  if not client then
    vim.notify("diffill: no server attached to this buffer", vim.log.levels.WARN)
    return nil
  end
  local bufnr = api.nvim_get_current_buf()
  local response, err = compat.call(client, "request_sync", "diffill/status", {}, 5000, bufnr)
  if not response or response.err then
    local why = err or (response and response.err.message)
    vim.notify("diffill: status failed: " .. tostring(why), vim.log.levels.ERROR)
    return nil
  end
  local line = H.format_status(response.result or {})
  api.nvim_echo({ { line } }, true, {})
  return response.result
end

--- Turn suggestions off or on everywhere; the server is told through its `enable` setting.
function M.toggle()
  M.enabled = not M.enabled
  for _, client in ipairs(vim.lsp.get_clients({ name = "diffill" })) do
    client.settings = vim.tbl_deep_extend("force", client.settings or {}, { enable = M.enabled })
    local params = { settings = client.settings }
    compat.call(client, "notify", "workspace/didChangeConfiguration", params)
  end
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    ghost.cancel(bufnr)
    ghost.hide(bufnr)
    if vim.lsp.inline_completion and M.client(bufnr) then
      vim.lsp.inline_completion.enable(M.enabled, { bufnr = bufnr })
    end
  end
  api.nvim_echo({ { "diffill: " .. (M.enabled and "enabled" or "disabled") } }, true, {})
end

function H.format_status(s)
  local model = type(s.model) == "table" and (s.model.name or s.model.model) or s.model
  local latency = s.latencyMs or {}
  local last = latency.last and latency.last[#latency.last]
  local parts = {
    ("diffill: %s"):format(s.state or "?"),
    ("model %s"):format(model or "?"),
    ("mode %s"):format(s.mode or "?"),
    ("last %s ms"):format(last and ("%.1f"):format(last) or "-"),
    ("p50 %s ms"):format(latency.p50 and ("%.1f"):format(latency.p50) or "-"),
    ("accepted %s"):format(s.accepted or 0),
  }
  if s.error and s.error ~= vim.NIL then
    parts[#parts + 1] = "error: " .. s.error
  end
  return table.concat(parts, ", ")
end

function H.wanted(bufnr)
  local filetypes = M.config.filetypes
  local ft = vim.bo[bufnr].filetype
  return vim.bo[bufnr].buftype == "" and ft ~= ""
    and (#filetypes == 0 or vim.tbl_contains(filetypes, ft))
end

function H.start_all(name, cmd)
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) then
      H.start(bufnr, name, cmd)
    end
  end
end

-- A server that stopped on its own is started again for every buffer at once, while the
-- budget lasts; past it the plugin says so, once. Scheduled from on_exit, the new client is
-- attached before Neovim detaches the old one, so no edit finds the buffer without a client
-- (Neovim 0.11 would stop sending that buffer's changes to any later client).
function H.on_exit(code, signal)
  if restarts.crashed(code, signal) then
    M.crash = { code = code, signal = signal }
    vim.schedule(H.recover)
  end
end

function H.recover()
  if M.crash == nil then
    return
  end
  if M.budget:grant(vim.uv.now() / 1000) then
    M.crash = nil
    H.start_all()
  elseif not H.told then
    H.told = true
    vim.notify(restarts.give_up_message(M.budget, M.crash), vim.log.levels.ERROR)
    H.start_all(PLACEHOLDER, restarts.placeholder)
  end
end

-- Start (or reuse) the server for `bufnr`; `name` and `cmd` default to diffill's own. After
-- the plugin gave up, only the placeholder starts, until :DiffillRestart.
function H.start(bufnr, name, cmd)
  if not H.wanted(bufnr) or (H.told and name ~= PLACEHOLDER) then
    return
  end
  local file = api.nvim_buf_get_name(bufnr)
  local root = vim.fs.root(bufnr, M.config.root_markers) or vim.fs.dirname(file)
  local ok, err = pcall(vim.lsp.start, {
    name = name or "diffill",
    cmd = cmd or M.config.cmd,
    root_dir = root ~= "" and root or vim.fn.getcwd(),
    init_options = options.server_settings(M.config.settings),
    settings = options.server_settings(M.config.settings),
    on_exit = H.on_exit,
  }, { bufnr = bufnr })
  if not ok then
    local message = ("diffill: cannot start %s: %s"):format(M.config.cmd[1], err)
    vim.notify_once(message, vim.log.levels.ERROR)
  end
end

function H.create_autocommands()
  local group = api.nvim_create_augroup("diffill", { clear = true })
  api.nvim_create_autocmd("FileType", {
    group = group,
    desc = "Start the diffill language server",
    callback = function(ev) H.start(ev.buf) end,
  })
  api.nvim_create_autocmd("LspAttach", {
    group = group,
    desc = "Show diffill suggestions in this buffer",
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == "diffill" then
        vim.bo[ev.buf].omnifunc = "v:lua.vim.lsp.omnifunc" -- textDocument/completion fallback
        H.attach(ev.buf, group)
      end
    end,
  })
  return group
end

function H.map(bufnr, name, fn)
  local lhs = M.config.keymaps[name]
  if lhs ~= "" then
    vim.keymap.set("i", lhs, fn, { buffer = bufnr, desc = "diffill: " .. name })
  end
end

function H.attach(bufnr, group)
  if vim.lsp.inline_completion then
    return H.attach_builtin(bufnr)
  end
  api.nvim_clear_autocmds({ group = group, buffer = bufnr }) -- attached again: no duplicates
  H.map(bufnr, "next", function() ghost.cycle(bufnr, 1) end)
  H.map(bufnr, "prev", function() ghost.cycle(bufnr, -1) end)
  local function on(events, desc, fn)
    api.nvim_create_autocmd(events, { group = group, buffer = bufnr, desc = desc, callback = fn })
  end
  on("TextChangedI", "Ask diffill after a typing pause", function()
    if M.enabled and not ghost.follow(bufnr) then
      ghost.hide(bufnr)
      ghost.schedule(bufnr)
    end
  end)
  on("CursorMovedI", "Drop a diffill suggestion the cursor left", function()
    if not ghost.follow(bufnr) then
      ghost.cancel(bufnr)
      ghost.hide(bufnr)
    end
  end)
  on({ "InsertLeave", "BufLeave" }, "Drop the diffill suggestion", function()
    ghost.cancel(bufnr)
    ghost.hide(bufnr)
  end)
end

-- Neovim >= 0.12 draws inline completions itself; only the keys are ours.
function H.attach_builtin(bufnr)
  local inline = vim.lsp.inline_completion
  inline.enable(M.enabled, { bufnr = bufnr })
  local lhs = M.config.keymaps.accept
  if lhs ~= "" then
    vim.keymap.set("i", lhs, function()
      return not inline.get() and api.nvim_replace_termcodes(lhs, true, true, true) or ""
    end, { buffer = bufnr, expr = true, desc = "diffill: accept" })
  end
  H.map(bufnr, "next", function() inline.select({ count = 1 }) end)
  H.map(bufnr, "prev", function() inline.select({ count = -1 }) end)
end

return M
