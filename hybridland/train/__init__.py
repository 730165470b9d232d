"""Training: typed YAML configs, masked losses, a resumable optax loop with atomic checkpoints.

``train(load_config("run.yaml"), "runs/demo")`` trains a physical (calibrated parameters) or
hybrid (network weights and parameters) column model on observed runoff; ``load_run`` reads the
best model back; ``evaluate_run`` evaluates it on any dataset of the training layout.
"""

from .checkpoint import (
    latest_checkpoint as latest_checkpoint,
    load_checkpoint as load_checkpoint,
    save_checkpoint as save_checkpoint,
)
from .config import (
    Config as Config,
    ConfigError as ConfigError,
    DataConfig as DataConfig,
    ModelConfig as ModelConfig,
    RunConfig as RunConfig,
    TrainingConfig as TrainingConfig,
    config_from_dict as config_from_dict,
    config_from_yaml as config_from_yaml,
    load_config as load_config,
)
from .losses import (
    LOSSES as LOSSES,
    extreme_weights as extreme_weights,
    kge_loss as kge_loss,
    mse as mse,
    nse_star as nse_star,
)
from ..column import MODEL_KINDS as MODEL_KINDS
from .data import (
    LOADERS as LOADERS,
    Normalisation as Normalisation,
    RunData as RunData,
    Source as Source,
    load_data as load_data,
)
from .evaluate import Evaluation as Evaluation, evaluate_run as evaluate_run
from .evaluate import evaluate_ensemble as evaluate_ensemble
from .loop import TrainResult as TrainResult, load_run as load_run, train as train
from .loop import release_compiled as release_compiled
from .loop import use_compilation_cache as use_compilation_cache
from .report import write_report as write_report
