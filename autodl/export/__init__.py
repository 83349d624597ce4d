"""Exporting the best model (ONNX, TorchScript, torch.export, state_dict, MLflow) and
predicting with it."""

from autodl.export._formats import FORMATS
from autodl.export._model_dir import (
    ExportResult,
    LoadedModel,
    export_model,
    export_study,
    load_model_dir,
    text_column,
)
from autodl.export._predict import predict, write_predictions

__all__ = ["FORMATS", "ExportResult", "LoadedModel", "export_model", "export_study",
           "load_model_dir", "predict", "text_column", "write_predictions"]
