"""BarcodeMAE models in the layout of a transformers model folder; importing registers them with the Auto classes."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

# Imported after our own submodules: `barcodemae/__init__` imports them back, which must not meet a half-built module.
from barcodemae.tokenization import BarcodeTokenizer

from .configuration_barcodemae import BarcodeMAEConfig
from .modeling_barcodemae import (
    BarcodeMAEForPreTraining,
    BarcodeMAEForSequenceClassification,
    BarcodeMAEModel,
    BarcodeMAEPreTrainedModel,
    BarcodeMAEPreTrainingOutput,
)

AutoConfig.register(BarcodeMAEConfig.model_type, BarcodeMAEConfig, exist_ok=True)
AutoModel.register(BarcodeMAEConfig, BarcodeMAEModel, exist_ok=True)
AutoModelForPreTraining.register(BarcodeMAEConfig, BarcodeMAEForPreTraining, exist_ok=True)
AutoModelForSequenceClassification.register(BarcodeMAEConfig, BarcodeMAEForSequenceClassification, exist_ok=True)
AutoTokenizer.register(BarcodeMAEConfig, fast_tokenizer_class=BarcodeTokenizer, exist_ok=True)

# Saved folders carry `auto_map` and these code files, so they load with trust_remote_code=True in a process that
# never imported this package.
BarcodeMAEConfig.register_for_auto_class()
BarcodeMAEModel.register_for_auto_class("AutoModel")
BarcodeMAEForPreTraining.register_for_auto_class("AutoModelForPreTraining")
BarcodeMAEForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
BarcodeTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = [
    "BarcodeMAEConfig",
    "BarcodeMAEForPreTraining",
    "BarcodeMAEForSequenceClassification",
    "BarcodeMAEModel",
    "BarcodeMAEPreTrainedModel",
    "BarcodeMAEPreTrainingOutput",
    "BarcodeTokenizer",
]
