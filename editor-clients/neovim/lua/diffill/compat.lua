-- LSP client calls that differ between Neovim versions. 0.11 made them methods
-- (`client:request()`) and deprecated the 0.10 style (`client.request()`), which warns there.
local M = {}

local methods = vim.fn.has("nvim-0.11") == 1

--- client:<name>(...) on 0.11+, client.<name>(...) on 0.10.
function M.call(client, name, ...)
  if methods then
    return client[name](client, ...)
  end
  return client[name](...)
end

--- Run an item's command after it is accepted (0.10 has no Client:exec_cmd).
function M.exec_cmd(client, command, bufnr)
  if methods then
    return client:exec_cmd(command, { bufnr = bufnr })
  end
  local params = { command = command.command, arguments = command.arguments }
  return client.request("workspace/executeCommand", params, function() end, bufnr)
end

return M
