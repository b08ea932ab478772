"""Experiment drivers: the replays, sweeps, worker-process rigs and failover helpers the
notebooks and benchmarks run. One module per notebook topic (``experiments.cache``,
``experiments.locks``, ...).

The pattern modules (``labkit.cache``, ``labkit.locks``, ...) never import from here; these
modules import the patterns and measure them. A learner reading a pattern module reads the
pattern only.
"""
