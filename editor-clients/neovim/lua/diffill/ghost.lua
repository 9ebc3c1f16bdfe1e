-- Ghost text for Neovim 0.10/0.11, which have no built-in inline completion: ask the server
-- (textDocument/inlineCompletion) after a typing pause, draw the answer with one extmark
-- (inline virt_text for the first line, virt_lines for the rest) and insert it on a key.
-- One namespace; render, hide and accept are one function each. Only one request per buffer
-- is in flight: a newer keystroke, a cursor move or leaving insert mode cancels it.
local M = {}

local api = vim.api
local compat = require("diffill.compat")
local ns = api.nvim_create_namespace("diffill.ghost")
local AUTOMATIC, INVOKED = 2, 1 -- lsp.InlineCompletionTriggerKind

M.ns = ns
M.config = require("diffill.config").defaults -- replaced by setup()
-- Per buffer: timer, pending {client, id}, shown suggestion, saved buffer-local mappings.
local buffers = {}

local function buf_state(bufnr)
  buffers[bufnr] = buffers[bufnr] or { saved_maps = {} }
  return buffers[bufnr]
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

--- The suggestion shown in `bufnr`, or nil: { text, row, col, items, index, invoked, ... }.
function M.current(bufnr)
  local st = buffers[bufnr]
  return st and st.shown
end

--- Whether a request is waiting for its debounce or for the server.
function M.busy(bufnr)
  local st = buffers[bufnr]
  return st ~= nil and (st.timer ~= nil or st.pending ~= nil)
end

--- Stop the debounce timer and cancel the request in flight, if any.
function M.cancel(bufnr)
  local st = buf_state(bufnr)
  if st.timer then
    st.timer:stop()
    st.timer:close()
    st.timer = nil
  end
  if st.pending then
    compat.call(st.pending.client, "cancel_request", st.pending.id)
    st.pending = nil
  end
end

-- Buffer-local keys exist only while a suggestion is visible; a buffer-local mapping the user
-- had on the same key is saved and put back by hide().
local function map_keys(bufnr)
  local st = buf_state(bufnr)
  local actions = {
    accept = function() M.accept(bufnr, "all") end,
    accept_word = function() M.accept(bufnr, "word") end,
    accept_line = function() M.accept(bufnr, "line") end,
    dismiss = function() M.hide(bufnr) end,
  }
  for name, fn in pairs(actions) do
    local lhs = M.config.keymaps[name]
    if lhs and lhs ~= "" and not st.saved_maps[lhs] then
      local old = vim.fn.maparg(lhs, "i", false, true)
      st.saved_maps[lhs] = (old.buffer == 1) and old or false
      vim.keymap.set("i", lhs, fn, { buffer = bufnr, nowait = true, desc = "diffill: " .. name })
    end
  end
end

local function unmap_keys(bufnr)
  local st = buf_state(bufnr)
  for lhs, old in pairs(st.saved_maps) do
    pcall(vim.keymap.del, "i", lhs, { buffer = bufnr })
    if old then
      vim.fn.mapset("i", false, old)
    end
  end
  st.saved_maps = {}
end

--- Draw `shown.text` at (shown.row, shown.col) and map the accept keys.
function M.render(bufnr, shown)
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local lines = vim.split(shown.text, "\n", { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], M.config.hl_group } }
  end
  api.nvim_buf_set_extmark(bufnr, ns, shown.row, shown.col, {
    virt_text = lines[1] ~= "" and { { lines[1], M.config.hl_group } } or nil,
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = "combine",
  })
  buf_state(bufnr).shown = shown
  map_keys(bufnr)
end

--- Remove the ghost text and the accept keys.
function M.hide(bufnr)
  if not api.nvim_buf_is_valid(bufnr) then
    buffers[bufnr] = nil
    return
  end
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  buf_state(bufnr).shown = nil
  unmap_keys(bufnr)
end

-- The part of `text` that accept_word / accept_line take: a word with the blanks before it
-- (or a run of punctuation), or up to the end of the line (a leading line break included).
local function take(text, part)
  if part == "word" then
    return text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text:match("^%s+") or text
  elseif part == "line" then
    return text:match("^\n?[^\n]*") or text
  end
  return text
end

-- Insert `text` at (row, col), replacing the `replace` bytes after it (closing brackets the
-- item's range covers).
local function insert_at(bufnr, row, col, replace, text)
  local lines = vim.split(text, "\n", { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, row, col + replace, lines)
  local new_row = row + #lines - 1
  local new_col = (#lines == 1 and col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  return new_row, new_col
end

--- Insert all of the suggestion, its next word or its next line. Whatever is left stays shown.
function M.accept(bufnr, part)
  local shown = M.current(bufnr)
  if not shown then
    return false
  end
  local piece = take(shown.text, part)
  local whole = piece == shown.text
  M.hide(bufnr)
  local row, col = insert_at(bufnr, shown.row, shown.col, whole and shown.replace or 0, piece)
  if whole then
    if shown.command then
      compat.exec_cmd(shown.client, shown.command, bufnr)
    end
    return true
  end
  local rest = vim.tbl_extend("force", shown, { text = shown.text:sub(#piece + 1) })
  rest.row, rest.col = row, col
  rest.consumed = shown.consumed .. piece
  M.render(bufnr, rest)
  return true
end

-- An LSP item as text to insert at the cursor: the part of its range before the cursor must
-- already be typed (it is cut off), and the part after the cursor is replaced on accept.
-- (vim.lsp.util._get_line_byte_from_position is the conversion 0.10-0.12 use themselves; the
-- public str_byteindex changed its signature in 0.11.)
local function to_shown(bufnr, client, item, row, col)
  local text = type(item.insertText) == "table" and item.insertText.value or item.insertText
  if type(text) ~= "string" then
    return nil
  end
  local shown = { text = text, row = row, col = col, client = client, command = item.command }
  shown.replace = 0
  if item.range then
    local enc = client.offset_encoding
    local s = item.range.start
    local e = item.range["end"]
    local scol = vim.lsp.util._get_line_byte_from_position(bufnr, s, enc)
    local typed = api.nvim_buf_get_text(bufnr, s.line, scol, row, col, {})
    typed = table.concat(typed, "\n")
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    shown.text = text:sub(#typed + 1)
    if e.line == row then
      shown.replace = math.max(0, vim.lsp.util._get_line_byte_from_position(bufnr, e, enc) - col)
    end
  end
  return shown.text:match("%S") and shown or nil
end

local function show_items(bufnr, client, items, req)
  local shown_items = {}
  for _, item in ipairs(items) do
    shown_items[#shown_items + 1] = to_shown(bufnr, client, item, req.row, req.col)
  end
  if #shown_items == 0 then
    return
  end
  local index = math.min(req.index or 1, #shown_items)
  local shown = vim.tbl_extend("force", shown_items[index], {
    items = shown_items, index = index, invoked = req.kind == INVOKED, consumed = "",
  })
  M.render(bufnr, shown)
end

local function on_result(bufnr, client, req, err, result)
  local st = buf_state(bufnr)
  if not (st.pending and st.pending.id == req.id) then
    return -- a newer request replaced this one
  end
  st.pending = nil
  local row, col = cursor()
  local moved = row ~= req.row or col ~= req.col or api.nvim_get_current_buf() ~= bufnr
  if err or not result or moved or api.nvim_buf_get_changedtick(bufnr) ~= req.tick then
    return
  end
  if not api.nvim_get_mode().mode:match("^i") then
    return
  end
  show_items(bufnr, client, result.items or result, req)
end

--- Ask the server now. kind: 2 Automatic (one item) or 1 Invoked (alternatives).
function M.request(bufnr, kind, index)
  M.cancel(bufnr)
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = "diffill" })[1]
  if not client or api.nvim_get_current_buf() ~= bufnr then
    return
  end
  local row, col = cursor()
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = kind }
  local req = { row = row, col = col, tick = api.nvim_buf_get_changedtick(bufnr), kind = kind }
  req.index = index
  local function handler(err, result)
    on_result(bufnr, client, req, err, result)
  end
  local method = "textDocument/inlineCompletion"
  local ok, id = compat.call(client, "request", method, params, handler, bufnr)
  if ok then
    req.id = id
    buf_state(bufnr).pending = { client = client, id = id }
  end
end

--- Request after `debounce_ms` without typing; each call restarts the wait.
function M.schedule(bufnr)
  M.cancel(bufnr)
  local st = buf_state(bufnr)
  st.timer = vim.uv.new_timer()
  st.timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    if st.timer then
      st.timer:close()
      st.timer = nil
    end
    if api.nvim_get_mode().mode:match("^i") then
      M.request(bufnr, AUTOMATIC)
    end
  end))
end

--- Show the alternative `step` away; the first call asks the server for alternatives.
function M.cycle(bufnr, step)
  local shown = M.current(bufnr)
  if not (shown and shown.invoked) then
    M.request(bufnr, INVOKED, shown and 2 or 1)
    return
  end
  local count = #shown.items
  for offset = 1, count do
    local index = (shown.index - 1 + step * offset) % count + 1
    local item = shown.items[index]
    if item.text:sub(1, #shown.consumed) == shown.consumed and #item.text > #shown.consumed then
      M.render(bufnr, vim.tbl_extend("force", shown, {
        text = item.text:sub(#shown.consumed + 1), index = index,
        command = item.command, replace = item.replace,
      }))
      return
    end
  end
end

--- Keep the suggestion while the cursor is where it was drawn or the user types its next
--- characters (typed-ahead: the ghost text shrinks). Returns false when it no longer fits.
function M.follow(bufnr)
  local shown = M.current(bufnr)
  if not shown then
    return false
  end
  local row, col = cursor()
  if row == shown.row and col == shown.col then
    return true
  end
  if row ~= shown.row or col < shown.col then
    return false
  end
  local typed = api.nvim_buf_get_text(bufnr, row, shown.col, row, col, {})[1]
  if shown.text:sub(1, #typed) ~= typed or #typed >= #shown.text then
    return false
  end
  M.render(bufnr, vim.tbl_extend("force", shown, {
    text = shown.text:sub(#typed + 1), col = col, consumed = shown.consumed .. typed,
  }))
  return true
end

return M
