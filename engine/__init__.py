"""twodclass engine: maximum-likelihood 2D classification of cryo-EM particles.

Pure computation on arrays lives in the kernels and the model; file readers and writers
sit at the edge (``engine.io``); the faces (CLI, terminal UI, Scipion plugin) sit on top.
"""

#: the version of the whole distribution (pyproject.toml reads it from here)
__version__ = "0.1.0"
