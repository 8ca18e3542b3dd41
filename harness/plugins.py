"""Imports every module that registers something, so registries are complete before use."""
import harness.zoo  # noqa: F401
from harness.data import cifar, coco, digits, folder, scenes  # noqa: F401
from harness.data import coco_panoptic, segfolder  # noqa: F401
from harness.evaluation import detection, panoptic, semantic  # noqa: F401  (metric declarations)
from harness.models import hf_detection, hf_segmentation, loaders  # noqa: F401
from harness.tasks import classification  # noqa: F401
from harness.tasks import adversarial  # noqa: F401
from harness.tasks import corruption  # noqa: F401
from harness.tasks import latency  # noqa: F401
from harness.tasks import detection, panoptic, segmentation  # noqa: F401
