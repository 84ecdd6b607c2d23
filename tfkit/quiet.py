"""Imports TensorFlow without the C++ start-up lines it writes straight to stderr.

TensorFlow 2.21 prints oneDNN and CUDA notices before its logging is set up, so
`TF_CPP_MIN_LOG_LEVEL` cannot hide them; they would bury tfkit's one-line errors.
Python exceptions raised by the import are untouched. Import this module before
TensorFlow or Keras, as keras-io examples set KERAS_BACKEND first.

It also hides one misleading warning: Keras 3.15 says "`shuffle=True` was passed,
but will be ignored" on every `fit` of a `tf.data.Dataset` (shuffle defaults to
True); tfkit's pipelines shuffle the training split themselves, every epoch.
"""

import contextlib
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed, but will be ignored")


@contextlib.contextmanager
def _stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if "tensorflow" not in sys.modules:
    with _stderr_silenced():
        import tensorflow

        # The first device query prints a CUDA error line on machines without GPUs.
        tensorflow.config.list_physical_devices("GPU")
