"""Text and image-folder data: tokenised once (cached), decoded once, errors that name the
file, the column and the option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from autodl.cli._parser import build_parser
from autodl.data import PreparedData, TextSettings, list_datasets, load_data, load_features
from autodl.errors import UsageError
from autodl.train._augment import augment_batch
from tests.pretrained_fixtures import (
    review_texts,
    review_words,
    save_tokenizer,
    write_image_folder,
)

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer", review_words())


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    texts, labels = review_texts(60)
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(60), "text": texts, "label": labels}).to_csv(path, index=False)
    return path


def _load(spec: str, tokenizer: Path | None, cache: Path | None = None,
          column: str = "text") -> PreparedData:
    settings = TextSettings(column, str(tokenizer) if tokenizer else None, cache)
    return load_data(spec, target="label", text=settings)


def test_text_table_becomes_token_ids_and_mask(reviews, tokenizer) -> None:
    data = _load(f"{reviews}?max_length=12", tokenizer)
    assert (data.modality, data.task, data.input_shape) == ("text", "classification", (2, 12))
    assert data.classes == ["negative", "positive"]
    assert data.X_train.dtype == np.int64 and len(data.X_train) == 38
    ids, mask = data.X_train[:, 0], data.X_train[:, 1]
    assert set(np.unique(mask)) == {0, 1} and (ids[mask == 0] == 0).all()  # [PAD] is id 0
    vocab = (tokenizer / "vocab.txt").read_text().split()
    assert (ids[:, 0] == vocab.index("[CLS]")).all()
    assert not (ids == vocab.index("[UNK]")).any()  # every word is in the vocabulary
    assert data.preprocessor.text == {"tokenizer": str(tokenizer), "max_length": 12}
    assert data.feature_names == ["text"]


def test_text_tokens_are_cached_by_tokenizer_length_and_texts(
        reviews, tokenizer, tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    first = _load(f"{reviews}?max_length=12", tokenizer, cache)
    assert len(list(cache.glob("tokens-*.npy"))) == 1

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenised again despite the cache")

    monkeypatch.setattr("autodl.data._text.tokenize", no_tokenizing)
    again = _load(f"{reviews}?max_length=12", tokenizer, cache)
    np.testing.assert_array_equal(again.X_train, first.X_train)
    monkeypatch.undo()
    _load(f"{reviews}?max_length=10", tokenizer, cache)
    frame = pd.read_csv(reviews)
    frame.loc[0, "text"] = "a different first review"
    frame.to_csv(reviews, index=False)
    _load(f"{reviews}?max_length=10", tokenizer, cache)
    assert len(list(cache.glob("tokens-*.npy"))) == 3


def test_text_prepared_data_round_trips_and_transforms_raw_text(
        reviews, tokenizer, tmp_path) -> None:
    data = _load(f"{reviews}?max_length=12", tokenizer)
    data.save(tmp_path / "data.npz")
    loaded = PreparedData.load(tmp_path / "data.npz")
    assert loaded.X_val.dtype == np.int64 and loaded.preprocessor.text == data.preprocessor.text
    pre = loaded.preprocessor
    one = pre.transform(["the plot was superb"])
    assert one.shape == (1, 2, 12) and one[0, 1].sum() == 6  # [CLS] 4 words [SEP]
    frame = pd.DataFrame({"other": [1, 2], "text": ["boring", "the plot was superb"]})
    np.testing.assert_array_equal(pre.transform(frame)[1], one[0])
    np.testing.assert_array_equal(pre.transform(data.X_test), data.X_test)  # already tokens
    with pytest.raises(UsageError, match="no text column 'text'"):
        pre.transform(pd.DataFrame({"body": ["x"]}))


@pytest.mark.parametrize("change, message, key", [
    ({"column": "body"}, "no column 'body'", "text_column"),
    ({"tokenizer": None}, "text needs a tokenizer", "tokenizer"),
    ({"spec": "?max_length=1"}, "max_length expects an integer from 2", "max_length"),
    ({"spec": "?size=3"}, "unknown option", "data"),
    ({"tokenizer": "missing-dir"}, "no such local path", "tokenizer"),
])
def test_text_errors_name_the_column_option_or_path(reviews, tokenizer, change, message,
                                                    key) -> None:
    chosen = change.get("tokenizer", tokenizer)
    with pytest.raises(UsageError, match=message) as info:
        _load(f"{reviews}{change.get('spec', '')}", chosen, column=change.get("column", "text"))
    assert info.value.key == key


def test_text_column_with_missing_text_names_the_row(tmp_path, tokenizer) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["good", "bad", None, "fine"] * 5,
                  "label": ["p", "n", "n", "p"] * 5}).to_csv(path, index=False)
    with pytest.raises(UsageError, match="5 missing values; first at row 2"):
        _load(str(path), tokenizer)


def test_text_column_applies_to_tables_only(tmp_path, tokenizer) -> None:
    np.savez(tmp_path / "d.npz", X=np.zeros((20, 3)), y=np.arange(20) % 2)
    with pytest.raises(UsageError, match=r"applies to \.csv/\.parquet tables only"):
        _load(str(tmp_path / "d.npz"), tokenizer)


def test_synthetic_text_is_listed_and_tokenised_with_the_given_tokenizer(tokenizer) -> None:
    assert "synthetic:text" in dict(list_datasets())
    with pytest.raises(UsageError, match="needs a tokenizer"):
        load_data("synthetic:text")
    data = load_data("synthetic:text?n=50&max_length=8",
                     text=TextSettings(tokenizer=str(tokenizer)))
    assert data.input_shape == (2, 8) and data.classes == ["negative", "positive"]
    assert len(data.X_train) + len(data.X_val) + len(data.X_test) == 50
    texts = load_features("synthetic:text?n=5")
    assert len(texts) == 5 and all(isinstance(t, str) and t for t in texts)


def test_predict_features_of_a_text_table_are_its_strings(reviews) -> None:
    texts = load_features(str(reviews), "label", text_column="text")
    assert texts.dtype == object and len(texts) == 60 and isinstance(texts[0], str)


# ---------------------------------------------------------------- image folders


def test_image_folder_decoded_with_labels_from_folder_names(tmp_path) -> None:
    from PIL import Image

    root = write_image_folder(tmp_path / "img", per_class=8, size=20)
    Image.fromarray(np.full((30, 12), 200, np.uint8)).save(root / "vertical" / "gray.jpg")
    data = load_data(f"{root}?size=8")
    assert (data.modality, data.input_shape, data.classes) == ("image", (3, 8, 8),
                                                               ["horizontal", "vertical"])
    total = len(data.X_train) + len(data.X_val) + len(data.X_test)
    assert total == 17 and data.X_train.dtype == np.float32
    assert abs(float(data.X_train.mean())) < 0.2  # standardised with train statistics
    assert load_features(f"{root}?size=8").shape == (17, 3, 8, 8)


def test_image_folder_errors_name_the_folder_or_file(tmp_path) -> None:
    root = write_image_folder(tmp_path / "img", per_class=6)
    with pytest.raises(UsageError, match="size expects an integer"):
        load_data(f"{root}?size=2")
    with pytest.raises(UsageError, match="unknown option"):
        load_data(f"{root}?modality=image")
    (root / "vertical" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match="cannot decode the image") as info:
        load_data(str(root))
    assert info.value.file.endswith("broken.png")
    (root / "vertical" / "broken.png").unlink()
    (root / "empty").mkdir()
    with pytest.raises(UsageError, match="class folder 'empty' holds no"):
        load_data(str(root))


def test_augment_hflip_flips_some_images_and_text_is_left_alone() -> None:
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(1, 2, 8, 8).repeat(64, 1, 1, 1)
    plain = augment_batch(x, "image", torch.Generator().manual_seed(0))
    flipped = augment_batch(x, "image", torch.Generator().manual_seed(0), hflip=True)
    assert len(torch.unique(plain, dim=0)) == 1
    assert len(torch.unique(flipped, dim=0)) == 2
    tokens = torch.randint(0, 100, (4, 2, 6))
    assert torch.equal(augment_batch(tokens, "text", torch.Generator(), hflip=True), tokens)


def test_cli_takes_text_column_for_search_and_validate() -> None:
    parser = build_parser()
    args = parser.parse_args(["search", "finetune_text", "--data", "r.csv", "--text-column",
                              "review", "--target", "label"])
    assert args.text_column == "review"
    args = parser.parse_args(["spaces", "validate", "f.yaml", "--text-column", "review"])
    assert args.text_column == "review"
