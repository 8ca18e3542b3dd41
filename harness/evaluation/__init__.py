"""The evaluation contract every task shares: samples and targets, canonical model outputs, mergeable
evaluator state, per-sample records and metric metadata (see docs/extending.md)."""
