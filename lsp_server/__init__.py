"""The diffill language server (pygls): protocol, context, scheduling, post-processing."""
