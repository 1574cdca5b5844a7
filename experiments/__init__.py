"""Reproducible lab experiments; each module has PARAMS and run(params, results)."""
