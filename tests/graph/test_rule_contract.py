"""The sweep checks the rule contract itself (one cotangent per input), also under ``python -O``."""

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from onnx_xai.graph.autodiff import backward
from onnx_xai.graph.emitter import Emitter
from onnx_xai.graph.info import GraphInfo
from onnx_xai.graph.rules import rule_table
from onnx_xai.support.errors import RuleContractError


def relu_model():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def broken_relu(e, node, g_out):
    return ()  # no cotangent for Relu's one input


def test_a_rule_that_breaks_the_contract_is_named():
    e = Emitter(GraphInfo(relu_model()))
    seed = e.const(np.ones((1, 4), np.float32))
    with pytest.raises(RuleContractError, match="the VJP rule of Relu returned 0 cotangents for 1 inputs"):
        backward(e, "y", seed, ["x"], rules=rule_table() | {"Relu": broken_relu})


def test_the_check_holds_under_optimized_python():
    code = "import tests.graph.test_rule_contract as t; t.test_a_rule_that_breaks_the_contract_is_named()"
    done = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
