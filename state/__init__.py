"""Per-key ATP state: the model, its typed binary encoding, and (later) serving-store access."""
