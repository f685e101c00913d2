"""The bottom layer: the types and records every other package shares: the strategy record and
its registry, the candidate settings, the training method record, setup records, the cost model,
the budget, Progress, the content key of every cache, the version. It imports nothing from
tunewise but errors; see "Layers" in docs/development.md."""
