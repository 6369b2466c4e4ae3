"""Pure ATP domain logic: validation, the per-key fold, channel ATP and promise.

Nothing here performs I/O or reads the wall clock, so every engine (the Flink job,
the Beam backfill, the engine-free replay) gets the same answer from the same log.
"""
