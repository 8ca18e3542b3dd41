"""Tiny random-init Hugging Face segmenters for tests (no download): transformers configs as suite
``config`` mappings, and a OneFormer saved to a folder with a character-level CLIP tokenizer."""
from __future__ import annotations

import json
import string
from pathlib import Path

import torch

SWIN = {"model_type": "swin", "image_size": 64, "patch_size": 4, "embed_dim": 16, "depths": [1, 1, 1, 1],
        "num_heads": [1, 1, 2, 2], "window_size": 4, "out_features": ["stage1", "stage2", "stage3", "stage4"]}
CONVNEXT = {"model_type": "convnext", "hidden_sizes": [8, 16, 32, 64], "depths": [1, 1, 1, 1],
            "out_features": ["stage1", "stage2", "stage3", "stage4"]}
SMALL_INPUT = {"size": {"shortest_edge": 64, "longest_edge": 128}}  # Mask2Former / OneFormer processors
SQUARE_INPUT = {"size": {"height": 64, "width": 64}}  # SegFormer / UperNet processors
# random weights score every query low: keep every query and mask so the post-processing has segments
LOOSE = {"threshold": 0.0, "mask_threshold": 0.0, "overlap_mask_area_threshold": 0.0}


def labels(names: list[str]) -> dict[int, str]:
    return dict(enumerate(names))


def segformer(names: list[str]) -> dict:
    return {"model_type": "segformer", "num_encoder_blocks": 2, "depths": [1, 1], "sr_ratios": [2, 1],
            "hidden_sizes": [16, 32], "patch_sizes": [7, 3], "strides": [4, 2], "num_attention_heads": [1, 2],
            "mlp_ratios": [2, 2], "decoder_hidden_size": 32, "id2label": labels(names)}


def upernet(names: list[str]) -> dict:
    return {"model_type": "upernet", "backbone_config": CONVNEXT, "hidden_size": 16, "use_auxiliary_head": False,
            "pool_scales": [1, 2], "id2label": labels(names)}


def mask2former(names: list[str]) -> dict:
    return {"model_type": "mask2former", "backbone_config": SWIN, "id2label": labels(names), "hidden_dim": 32,
            "encoder_feedforward_dim": 64, "dim_feedforward": 64, "num_queries": 10, "decoder_layers": 2,
            "encoder_layers": 1, "mask_feature_size": 32, "feature_size": 32, "num_attention_heads": 2,
            "use_pretrained_backbone": False}


def spread(net: torch.nn.Module, factor: float = 12.0) -> None:
    """Scale the class and mask heads so random queries disagree: varied labels and several segments."""
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            heads = ("class_predictor", "class_embed", "mask_embed", "queries_embedder")
            if name.endswith("weight") and any(part in name for part in heads):
                parameter.mul_(factor)


def char_tokenizer(folder: Path):
    """A CLIP tokenizer whose vocabulary is single characters (OneFormer only needs its task prompt tokenised)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase:
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(f"{char}</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def save_oneformer(folder: Path, names: list[str], seed: int = 0) -> Path:
    """A tiny random OneFormer with its processor (image processor + tokenizer) saved to ``folder``."""
    from transformers import (OneFormerConfig, OneFormerForUniversalSegmentation, OneFormerImageProcessor,
                              OneFormerProcessor, SwinConfig)

    torch.manual_seed(seed)
    tokenizer = char_tokenizer(folder / "tokenizer-src")
    backbone = SwinConfig(**{k: v for k, v in SWIN.items() if k != "model_type"})
    config = OneFormerConfig(backbone_config=backbone, id2label=labels(names), hidden_dim=32,
                             encoder_feedforward_dim=64, dim_feedforward=64, num_queries=10, decoder_layers=2,
                             encoder_layers=1, mask_dim=32, conv_dim=32, num_attention_heads=2,
                             text_encoder_width=32, text_encoder_num_layers=1, text_encoder_proj_layers=1,
                             text_encoder_vocab_size=len(tokenizer), use_pretrained_backbone=False)
    net = OneFormerForUniversalSegmentation(config).eval()
    spread(net)
    processor = OneFormerProcessor(OneFormerImageProcessor(**SMALL_INPUT, num_labels=len(names)), tokenizer)
    net.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
