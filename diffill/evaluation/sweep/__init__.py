"""`diffill sweep`: model shapes under the latency budget, quality against latency
(main: the command; plan: the points; measure: latency and quality; report: the table)."""
