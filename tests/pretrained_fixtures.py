"""Small local backbones and data the pretrained-family tests build themselves (nothing is
downloaded): a tiny BERT with a word-level vocabulary, a tiny ResNet, review CSVs and
image folders."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from autodl.data import _sentences
from autodl.data._sentences import sentiment_sentences

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def review_words() -> list[str]:
    """Every word a synthetic review can hold (a vocabulary without unknown words)."""
    lists = (_sentences.POSITIVE, _sentences.NEGATIVE, _sentences.NOUNS,
             _sentences.TEMPLATES)
    return [" ".join(words) for words in lists]


def review_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` synthetic review sentences and their labels (positive / negative)."""
    raw = sentiment_sentences(np.random.default_rng(seed), n, 16)
    return [str(t) for t in raw.X], [str(label) for label in raw.y]


def write_reviews(path: Path, n: int, seed: int = 0) -> Path:
    import pandas as pd

    texts, labels = review_texts(n, seed)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return path


def save_tokenizer(dest: Path, texts: list[str]) -> Path:
    """A BERT word-piece tokenizer whose vocabulary is every word in ``texts``."""
    from transformers import BertTokenizerFast

    words = sorted({w for t in texts for w in re.findall(r"[a-z]+|[^\sa-z]", t.lower())})
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "vocab.txt").write_text("\n".join(SPECIAL_TOKENS + words) + "\n")
    BertTokenizerFast.from_pretrained(str(dest)).save_pretrained(str(dest))
    return dest


def save_tiny_bert(dest: Path, texts: list[str]) -> Path:
    """A randomly initialised 2-layer BERT (hidden size 32) plus its tokenizer."""
    from transformers import BertConfig, BertModel

    save_tokenizer(dest, texts)
    vocab = len((dest / "vocab.txt").read_text().split())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(str(dest))
    return dest


def save_tiny_resnet(dest: Path) -> Path:
    """A randomly initialised two-stage Hugging Face ResNet (8 and 16 channels)."""
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16],
                          depths=[1, 1], layer_type="basic")
    ResNetModel(config).save_pretrained(str(dest))
    return dest


def stripes(rng: np.random.Generator, size: int, vertical: bool) -> np.ndarray:
    """An RGB uint8 image of stripes (2-pixel period) with a random tint, phase and noise."""
    phase = rng.integers(2)
    line = ((np.arange(size) + phase) % 2).astype(np.float32)
    pattern = np.tile(line, (size, 1)) if vertical else np.tile(line[:, None], (1, size))
    tint = rng.uniform(0.4, 1.0, 3)
    image = pattern[..., None] * tint + rng.normal(0, 0.15, (size, size, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_image_folder(root: Path, per_class: int, size: int = 16, seed: int = 0) -> Path:
    """``root/horizontal`` and ``root/vertical``: striped PNG images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in ("horizontal", "vertical"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = stripes(rng, size, vertical=name == "vertical")
            Image.fromarray(image).save(root / name / f"{i:03d}.png")
    return root
