-- Commands only; nothing starts until require("diffill").setup() is called.
if vim.g.loaded_diffill then
  return
end
vim.g.loaded_diffill = true

vim.api.nvim_create_user_command("DiffillStatus", function()
  require("diffill").status()
end, { desc = "diffill: model, mode, last latency (diffill/status)" })
vim.api.nvim_create_user_command("DiffillToggle", function()
  require("diffill").toggle()
end, { desc = "diffill: turn suggestions off or on" })
