"""BarcodeMAE models in the layout of a transformers model folder; importing registers them with the Auto classes.

ENBED (``modeling_enbed``) is ``transformers``' LongT5 with a barcode config and a token-count-normalised loss:
its pretraining folders load with the Auto classes of LongT5, nothing to register. Its error detector
(``EnbedForErrorDetection``) is a LongT5 encoder with heads LongT5 lacks: its folders carry an ``auto_map`` for
``AutoModelForTokenClassification`` (remote code) instead, since registering it locally for ``LongT5Config``
would take over every LongT5 folder.

The tokenizer lives in ``barcodemae.tokenization`` and is registered with ``AutoTokenizer`` when that package is
imported (``barcodemae.auto_classes``; ``from barcodemae import ...`` of any model or tokenizer name does it too):
the model folder depends on nothing of the package around it, so there is no import cycle.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .configuration_barcodemae import BarcodeMAEConfig
from .modeling_barcodemae import (
    BarcodeMAEForPreTraining,
    BarcodeMAEForSequenceClassification,
    BarcodeMAEModel,
    BarcodeMAEPreTrainedModel,
    BarcodeMAEPreTrainingOutput,
)
from .modeling_enbed import (
    EnbedErrorDetectionOutput,
    EnbedForConditionalGeneration,
    EnbedForErrorDetection,
    enbed_config,
)

AutoConfig.register(BarcodeMAEConfig.model_type, BarcodeMAEConfig, exist_ok=True)
AutoModel.register(BarcodeMAEConfig, BarcodeMAEModel, exist_ok=True)
AutoModelForPreTraining.register(BarcodeMAEConfig, BarcodeMAEForPreTraining, exist_ok=True)
AutoModelForSequenceClassification.register(BarcodeMAEConfig, BarcodeMAEForSequenceClassification, exist_ok=True)

# Saved folders carry `auto_map` and these code files, so they load with trust_remote_code=True in a process that
# never imported this package.
BarcodeMAEConfig.register_for_auto_class()
BarcodeMAEModel.register_for_auto_class("AutoModel")
BarcodeMAEForPreTraining.register_for_auto_class("AutoModelForPreTraining")
BarcodeMAEForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
EnbedForErrorDetection.register_for_auto_class("AutoModelForTokenClassification")

__all__ = [
    "BarcodeMAEConfig",
    "BarcodeMAEForPreTraining",
    "BarcodeMAEForSequenceClassification",
    "BarcodeMAEModel",
    "BarcodeMAEPreTrainedModel",
    "BarcodeMAEPreTrainingOutput",
    "EnbedErrorDetectionOutput",
    "EnbedForConditionalGeneration",
    "EnbedForErrorDetection",
    "enbed_config",
]
