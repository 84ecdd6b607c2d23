import keras
import pytest

from tfkit.hardware import num_gpus, set_mixed_precision, use_jit_compile

pytestmark = pytest.mark.skipif(num_gpus() > 0, reason="CPU rules; a GPU machine picks fp16")


def test_explicit_precision_settings_are_obeyed():
    assert set_mixed_precision("bf16") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert use_jit_compile("auto", helps_on_cpu=True) is False  # bf16 + XLA collapsed SimpleRNN
    assert set_mixed_precision("off") == "float32"
    assert use_jit_compile("auto", helps_on_cpu=True) is True
    assert use_jit_compile("off", helps_on_cpu=True) is False
    assert use_jit_compile("on") is True


def test_auto_precision_is_float32_where_bf16_does_not_help():
    assert set_mixed_precision("auto", bf16_helps_on_cpu=False) == "float32"
