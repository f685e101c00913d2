"""Documents -> chunks -> index: BM25 (bm25s), dense embeddings, and their fusion."""
