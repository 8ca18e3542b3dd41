"""visionbench-flip: does a classifier keep its prediction when the image is mirrored?

Importing the package registers the task ``flip_consistency``, its evaluator, its two metrics and its report
figure (the harness finds the package through its ``visionbench.plugins`` entry point).
"""
from vb_flip import figures, task  # noqa: F401  (they register)

__version__ = "0.1.0"
