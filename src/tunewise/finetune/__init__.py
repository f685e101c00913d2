"""Fine-tuning: training sequences and their lint, batching, and the LoRA training recipe."""
