"""Loop closure for chunked runs: frame descriptors, retrieval of revisits, geometric
verification, a Sim(3) pose graph over chunks, and rewriting a run's outputs with the
optimised poses (see docs/loop_closure.md).

Each module is a pure function core on numpy arrays; nothing here imports torch.
"""
