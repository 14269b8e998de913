"""The worker: everything that touches the network, run by each worker process of a generation."""
