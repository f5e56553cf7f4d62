"""Tools for developing VoxSpace without the Hub or a GPU (tiny models, synthetic speech)."""
