-- The plugin's options: one commented defaults table, deep-merged with the user's and validated.
-- Validation never throws: every problem becomes a line in `issues` (shown by :checkhealth diffill)
-- and the default is used instead, so a typo never costs the user their completions.
local M = {}

M.defaults = {
  -- Command that starts the language server over stdio.
  cmd = { "diffill", "lsp" },
  -- Filetypes where the server is started. An empty list means every filetype.
  filetypes = { "python", "lua", "javascript", "typescript", "rust", "go", "c", "cpp", "sh" },
  -- Files that mark the workspace root (passed to the server as rootUri).
  root_markers = { ".git", "pyproject.toml", "package.json", "Cargo.toml", "go.mod" },
  -- Milliseconds of typing pause before a suggestion is requested (Neovim < 0.12 only;
  -- 0.12's built-in inline completion has its own debounce).
  debounce_ms = 75,
  -- A server that stops on its own is started again on the next keystroke, at most
  -- `max_restarts` times within `restart_window_s` seconds; then the plugin gives up and says
  -- so once. :DiffillRestart starts it again with the whole budget.
  max_restarts = 4,
  restart_window_s = 180,
  -- Highlight group of the ghost text.
  hl_group = "Comment",
  -- Insert-mode keys. An empty string disables that key. `accept`, `accept_word`,
  -- `accept_line` and `dismiss` are mapped only while a suggestion is visible, so <Tab>
  -- keeps doing what it did before whenever there is nothing to accept.
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-C-Right>",
    dismiss = "<C-]>",
    next = "<M-]>", -- next alternative (asks the server for alternatives: Invoked trigger)
    prev = "<M-[>", -- previous alternative
  },
  -- Server settings, sent as initializationOptions and with workspace/didChangeConfiguration.
  -- Keys are the server's camelCase names (the same as the VS Code extension's `diffill.*`),
  -- e.g. { model = { mode = "diffusion", steps = 4, maxTokens = 64 }, alternatives = 3,
  -- extent = "auto" (or "line", "block"), loadWaitMs = 10000 }.
  -- Unset keys take the server's defaults.
  settings = {},
}

local types = {
  cmd = "table",
  filetypes = "table",
  root_markers = "table",
  debounce_ms = "number",
  max_restarts = "number",
  restart_window_s = "number",
  hl_group = "string",
  keymaps = "table",
  settings = "table",
}

local function check_keymaps(keymaps, issues)
  for name, lhs in pairs(keymaps) do
    if M.defaults.keymaps[name] == nil then
      table.insert(issues, ("keymaps.%s: unknown key (known: %s)"):format(
        name, table.concat(vim.tbl_keys(M.defaults.keymaps), ", ")))
      keymaps[name] = nil
    elseif type(lhs) ~= "string" then
      table.insert(issues, ("keymaps.%s: expected a string, got %s"):format(name, type(lhs)))
      keymaps[name] = M.defaults.keymaps[name]
    end
  end
end

local function check_values(config, issues)
  if #config.cmd == 0 or type(config.cmd[1]) ~= "string" then
    table.insert(issues, "cmd: expected a non-empty list of strings")
    config.cmd = vim.deepcopy(M.defaults.cmd)
  end
  for _, key in ipairs({ "debounce_ms", "max_restarts", "restart_window_s" }) do
    if config[key] < 0 then
      table.insert(issues, ("%s: expected >= 0, got %s"):format(key, config[key]))
      config[key] = M.defaults[key]
    end
  end
end

-- Deep merge where lists (cmd, filetypes) are replaced, never merged index by index
-- (Neovim 0.10's vim.tbl_deep_extend merges them).
local function merge(base, over)
  for key, value in pairs(over) do
    local is_map = type(value) == "table" and (next(value) == nil or not vim.islist(value))
    if is_map and type(base[key]) == "table" then
      merge(base[key], value)
    else
      base[key] = vim.deepcopy(value)
    end
  end
  return base
end

--- `settings` as a JSON object for the server: an empty Lua table would go out as `[]`.
function M.server_settings(settings)
  return next(settings) and settings or vim.empty_dict()
end

--- Merge `opts` over the defaults. Returns the config and a list of issues (strings).
function M.resolve(opts)
  local issues = {}
  if opts ~= nil and type(opts) ~= "table" then
    return vim.deepcopy(M.defaults), { ("setup(): expected a table, got %s"):format(type(opts)) }
  end
  local config = merge(vim.deepcopy(M.defaults), opts or {})
  for key, value in pairs(config) do
    if types[key] == nil then
      table.insert(issues, ("%s: unknown option"):format(key))
      config[key] = nil
    elseif type(value) ~= types[key] then
      table.insert(issues, ("%s: expected a %s, got %s"):format(key, types[key], type(value)))
      config[key] = vim.deepcopy(M.defaults[key])
    end
  end
  check_keymaps(config.keymaps, issues)
  check_values(config, issues)
  return config, issues
end

return M
