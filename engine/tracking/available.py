"""Whether a tracker can work here, checked before a run folder exists and without importing
torch (`refit train` starts its prefetching child first): its package is installed, and a local
MLflow file store is switched on where this MLflow keeps it behind a switch."""

from __future__ import annotations

from engine.tracking.targets import file_store_allowed, is_file_store

MLFLOW_MISSING = (
    "MLflow tracking needs the mlflow-skinny package: pip install 'refit-studio[tracking]'"
)
TENSORBOARD_MISSING = (
    "TensorBoard tracking needs the tensorboard package: pip install 'refit-studio[tracking]'"
)
FILE_STORE_OFF = (
    "MLflow {version} keeps local file stores (file:// or a folder) behind a switch: set "
    "MLFLOW_ALLOW_FILE_STORE=true, or track to sqlite:///PATH/mlflow.db or an MLflow server "
    "(mlflow:http://host:5000)."
)


def check_tensorboard() -> None:
    """Raise ImportError with one sentence when the tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401  (a package of a few small modules: no torch)
    except ImportError:
        raise ImportError(TENSORBOARD_MISSING) from None


def check_mlflow(uri: str) -> None:
    """Raise ImportError (mlflow-skinny missing) or ValueError (a local file store that this
    MLflow keeps switched off) with one sentence."""
    try:
        import mlflow
        import mlflow.environment_variables as env
    except ImportError:
        raise ImportError(MLFLOW_MISSING) from None
    if is_file_store(uri) and hasattr(env, "MLFLOW_ALLOW_FILE_STORE") and not file_store_allowed():
        raise ValueError(FILE_STORE_OFF.format(version=mlflow.__version__))
