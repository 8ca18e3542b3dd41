"""COCO image evaluations made batch by batch, beside the forward passes, and accumulated once at the end.

COCOeval's ``evaluate`` matches each image's detections to its ground truth on its own (per category and
area range); only ``accumulate`` sees the whole set. faster-coco-eval can keep those per-image evaluations
(``separate_eval=True``: a [category][area][image] list of C++ objects, as its torch evaluator uses across
ranks), so the detection evaluator evaluates each batch's images on the evaluation loop's digest thread,
while the model runs on the next batch, and ``compute`` stitches the images' evaluations in COCOeval's
order and runs only ``accumulate`` and ``summarize``: the numbers of one COCOeval over all images.

``compute`` stays a pure function of the merged records: the stitched path is taken only when every record
being scored was evaluated here from the same content (a checksum of its image id and results); a record
this evaluator never saw (a resumed run's saved batches, another rank's, a rescore) sends the whole job
down the ordinary path, a full COCOeval of the records.
"""
from __future__ import annotations

import zlib
from array import array
from typing import Any, Sequence

Record = dict[str, Any]


def checksum(record: Record) -> int:
    """CRC-32 of what COCOeval reads from a record: its image id and every result's box, score, category and
    mask (about 20x cheaper than hashing the record's JSON, which ``compute`` would pay on the main thread)."""
    numbers: list[float] = [record["image_id"], len(record["results"])]
    masks = []
    for result in record["results"]:
        numbers += result.get("bbox", ())
        numbers += (result["score"], result["category_id"])
        if "segmentation" in result:
            masks.append(str(result["segmentation"].get("counts")))
    value = zlib.crc32(array("d", numbers).tobytes())
    return zlib.crc32("\n".join(masks).encode(), value) if masks else value


class ImageEvaluations:
    """Per-image COCO evaluations by (pass, IoU type), with the checksum of the record each came from."""

    def __init__(self) -> None:
        self._columns: dict[tuple[str, str], dict[int, list[Any]]] = {}  # image id -> [category][area] objects
        self._checksums: dict[tuple[str, str], int] = {}  # (pass, sample id) -> checksum
        self._shape: dict[str, tuple[int, int]] = {}  # IoU type -> (categories, area ranges)

    def add(self, pass_name: str, iou_type: str, evaluator: Any) -> None:
        """The evaluations of a separately evaluated COCOeval (``separate_eval=True``, after evaluate())."""
        params = evaluator.params
        categories, areas, images = len(params.catIds), len(params.areaRng), len(params.imgIds)
        flat = evaluator._evalImgs_cpp  # [k][a][i] flattened, as COCOeval lays out evalImgs
        columns = self._columns.setdefault((pass_name, iou_type), {})
        for i, image_id in enumerate(params.imgIds):
            columns[int(image_id)] = [flat[(k * areas + a) * images + i] for k in range(categories) for a in range(areas)]
        self._shape[iou_type] = (categories, areas)

    def note(self, pass_name: str, sample_id: str, record: Record) -> None:
        self._checksums[(pass_name, sample_id)] = checksum(record)

    def matches(self, pass_name: str, records: Sequence[tuple[str, Record]]) -> bool:
        """Whether every record was processed here from identical content, each on an image of its own."""
        images = {int(record["image_id"]) for _, record in records}
        return len(images) == len(records) and all(self._checksums.get((pass_name, sample_id)) == checksum(record)
                                                   for sample_id, record in records)

    def stitched(self, pass_name: str, iou_type: str, image_ids: Sequence[int]) -> list[Any] | None:
        """The images' evaluations in COCOeval's [category][area][image] order over the sorted ``image_ids``
        (of records that ``matches``), or None when one of them was not evaluated for ``iou_type``."""
        columns = self._columns.get((pass_name, iou_type))
        image_ids = sorted(int(i) for i in image_ids)
        if not columns or iou_type not in self._shape or any(i not in columns for i in image_ids):
            return None
        categories, areas = self._shape[iou_type]
        per_image = [columns[i] for i in image_ids]
        return [column[k * areas + a] for k in range(categories) for a in range(areas) for column in per_image]
