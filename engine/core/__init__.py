"""Classification core: arrays in, arrays out (no file I/O)."""
