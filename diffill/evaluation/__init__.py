"""Measuring diffill: held-out evaluation, plausibility, benchmarks (engine, training, the
language server, open-weight families), the size sweep, A/B runs and shipping. Sits above
both engine/ and lsp_server/, which never import it."""
