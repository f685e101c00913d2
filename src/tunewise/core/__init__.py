"""The bottom layer: the types and records every other package shares (progress, the strategy
record and its registry, setup and cost records, the content-hash key). It imports nothing from
tunewise above it; see "Layers" in docs/development.md."""
