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


SPR = "avx512f avx512_bf16 amx_bf16 amx_tile"  # a Sapphire Rapids Xeon's bfloat16 flags


@pytest.mark.parametrize(
    "vendor, flags, cap, kind, faster",
    [
        ("GenuineIntel", SPR, None, "amx", True),
        # The same cores with oneDNN capped below AMX: bfloat16 slower than float32.
        ("GenuineIntel", SPR, "AVX512_CORE_BF16", "avx512_bf16", False),
        ("GenuineIntel", SPR, "avx512_core", None, False),
        ("GenuineIntel", "avx512f avx512_bf16", None, "avx512_bf16", False),  # Cooper Lake
        ("AuthenticAMD", "avx512f avx512_bf16", None, "avx512_bf16", True),  # Zen 4
        ("AuthenticAMD", "avx2 fma", None, None, False),
        # A value oneDNN does not know it ignores: all the CPU has.
        ("GenuineIntel", SPR, "garbage", "amx", True),
        ("GenuineIntel", SPR, " AVX512_CORE_BF16", "amx", True),
    ],
)
def test_auto_picks_bf16_where_it_was_measured_faster(monkeypatch, vendor, flags, cap, kind,
                                                      faster):  # fmt: skip
    from tfkit import hardware

    cpuinfo = {"vendor_id": vendor, "flags": flags}
    monkeypatch.setattr(hardware, "_cpuinfo_field", lambda name: cpuinfo.get(name, ""))
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert hardware.cpu_bf16() == kind
    assert hardware.bf16_faster_here() is faster
    expected = "mixed_bfloat16" if faster else "float32"
    assert set_mixed_precision("auto", bf16_helps_on_cpu=True) == expected
    assert set_mixed_precision("auto", bf16_helps_on_cpu=False) == "float32"
    set_mixed_precision("off")


def test_the_older_dnnl_name_of_the_cap_counts_too(monkeypatch):
    from tfkit import hardware

    cpuinfo = {"vendor_id": "GenuineIntel", "flags": "avx512_bf16 amx_bf16"}
    monkeypatch.setattr(hardware, "_cpuinfo_field", lambda name: cpuinfo.get(name, ""))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "avx512_core_bf16")
    assert hardware.onednn_isa_cap() == "AVX512_CORE_BF16" and not hardware.bf16_faster_here()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # oneDNN's own name first
    assert hardware.cpu_bf16() == "amx"
