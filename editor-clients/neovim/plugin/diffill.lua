-- Commands only; nothing starts until require("diffill").setup() is called.
if vim.g.loaded_diffill then
  return
end
vim.g.loaded_diffill = true

local commands = {
  DiffillStatus = { "status", "model, mode, last latency (diffill/status)" },
  DiffillToggle = { "toggle", "turn suggestions off or on" },
  DiffillRestart = { "restart", "restart the server, with the whole restart budget" },
}
for name, spec in pairs(commands) do
  local run = function() require("diffill")[spec[1]]() end
  vim.api.nvim_create_user_command(name, run, { desc = "diffill: " .. spec[2] })
end
