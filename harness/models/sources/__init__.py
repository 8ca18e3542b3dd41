"""The built-in model sources, one module each; importing the package registers them in MODEL_SOURCES."""
from harness.models.sources import hf, predictions, timm, torchvision, zoo  # noqa: F401  (they register)
