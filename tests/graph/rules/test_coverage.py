"""Every registered VJP rule has at least one table case, and registering an op twice fails."""

import pytest

from onnx_xai.graph.registry import vjp
from onnx_xai.graph.rules import supported_ops

from . import (
    test_activation,
    test_contrib,
    test_contrib_attention,
    test_contrib_decoder,
    test_conv,
    test_elementwise,
    test_integer,
    test_linear,
    test_ml,
    test_norm,
    test_pad_modes,
    test_pool,
    test_quantize,
    test_recurrent,
    test_reduce,
    test_sample,
    test_shape,
    test_spectral,
)

TABLES = [
    test_activation,
    test_conv,
    test_elementwise,
    test_integer,
    test_linear,
    test_ml,
    test_norm,
    test_pad_modes,
    test_pool,
    test_quantize,
    test_recurrent,
    test_reduce,
    test_sample,
    test_shape,
    test_spectral,
]


def test_every_rule_has_a_case():
    covered = {spec[0] for table in TABLES for case in table.CASES for spec in case.nodes}
    contrib = [
        *test_contrib.CASES,
        test_contrib.BIAS_ADD,
        *test_contrib_attention.CASES,
        *test_contrib_decoder.CASES,
    ]
    covered |= test_contrib.covered(contrib)  # com.microsoft ops, keyed by domain
    missing = sorted(set(supported_ops()) - covered)
    assert not missing, f"rules without a test case: {missing}"


def test_double_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        vjp("Relu")(lambda e, node, g: (None,))
