"""Engine adapters and wiring: the engine-free replay, the simulator and the CLI."""
