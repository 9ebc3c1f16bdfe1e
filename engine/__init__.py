"""Everything that turns (prefix, suffix) into a completion. Never imports lsp_server."""
