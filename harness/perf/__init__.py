"""Performance measurement: timers, FLOPs/params, peak memory and per-model subprocess isolation."""
