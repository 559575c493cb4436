"""Table of cases for the elementwise rules (broadcasting in both directions)."""

import numpy as np
import pytest
from onnx.numpy_helper import from_array

from .harness import Case, check, node

R = np.random.default_rng(1)
CASES = [
    Case("add_broadcast", [node("Add", ["a", "b"])], {"a": (2, 3, 4), "b": (3, 1)}),
    Case("add_const", [node("Add", ["a", "c"])], {"a": (2, 3)}, {"c": R.normal(size=(3,))}),
    Case("sub_broadcast", [node("Sub", ["a", "b"])], {"a": (1, 3), "b": (2, 1)}),
    Case("mul_broadcast", [node("Mul", ["a", "b"])], {"a": (2, 3, 4), "b": (4,)}),
    Case("mul_self", [node("Mul", ["a", "a"])], {"a": (5,)}),
    Case("div_broadcast", [node("Div", ["a", "b"])], {"a": (2, 3), "b": (2, 1)}, low=0.5),
    Case("sum3", [node("Sum", ["a", "b", "c"])], {"a": (2, 3), "b": (3,), "c": (2, 1)}),
    Case("mean3", [node("Mean", ["a", "b", "c"])], {"a": (2, 3), "b": (3,), "c": (2, 1)}),
    Case("max_broadcast", [node("Max", ["a", "b"])], {"a": (2, 3), "b": (3,)}),
    Case("min3", [node("Min", ["a", "b", "c"])], {"a": (2, 3), "b": (3,), "c": (2, 3)}),
    Case(
        "where",
        [node("Greater", ["a", "z"], "m"), node("Where", ["m", "a", "b"])],
        {"a": (2, 3), "b": (3,)},
        {"z": np.zeros(())},
    ),
    Case("pow_const", [node("Pow", ["a", "p"])], {"a": (2, 3)}, {"p": np.array(3.0)}),
    Case("pow_half", [node("Pow", ["a", "p"])], {"a": (2, 3)}, {"p": np.array([0.5, 2.0, 1.5])}, low=0.5),
    Case("neg", [node("Neg", ["a"])], {"a": (2, 3)}),
    Case("abs", [node("Abs", ["a"])], {"a": (2, 3)}),
    Case("exp", [node("Exp", ["a"])], {"a": (2, 3)}),
    Case("log", [node("Log", ["a"])], {"a": (2, 3)}, low=0.5),
    Case("sqrt", [node("Sqrt", ["a"])], {"a": (2, 3)}, low=0.5),
    Case("reciprocal", [node("Reciprocal", ["a"])], {"a": (2, 3)}, low=0.5),
    Case("erf", [node("Erf", ["a"])], {"a": (2, 3)}),
    Case("identity", [node("Identity", ["a"])], {"a": (2, 3)}),
    Case("dropout", [node("Dropout", ["a"], ["y", "mask"])], {"a": (2, 3)}),
    Case(
        "cast_roundtrip",
        [node("Cast", ["a"], "h", to=11), node("Cast", ["h"], "h2", to="dtype"), node("Mul", ["a", "h2"])],
        {"a": (2, 3)},
    ),
    Case(
        "piecewise_constant",
        [
            node("Floor", ["a"], "f"),
            node("Ceil", ["a"], "c"),
            node("Round", ["a"], "r"),
            node("Sign", ["a"], "s"),
            node("Sum", ["f", "c", "r", "s"], "k"),
            node("Mul", ["a", "k"]),
        ],
        {"a": (2, 3)},
        low=0.1,
        high=0.4,
    ),
    Case(
        "comparisons",
        [
            node("Greater", ["a", "b"], "g"),
            node("Less", ["a", "b"], "l"),
            node("Not", ["l"], "nl"),
            node("And", ["g", "nl"], "m1"),
            node("Equal", ["a", "a"], "e"),
            node("Or", ["m1", "e"], "m2"),
            node("GreaterOrEqual", ["a", "b"], "ge"),
            node("LessOrEqual", ["a", "b"], "le"),
            node("And", ["ge", "m2"], "m3"),
            node("Or", ["le", "m3"], "m"),
            node("Where", ["m", "a", "b"]),
        ],
        {"a": (2, 3), "b": (2, 3)},
        min_opset=12,
    ),
    Case(
        "nan_guard",  # dynamo's guard around attention softmax: Where(IsNaN(x), 0, x)
        [
            node("IsNaN", ["a"], "n"),
            node("IsInf", ["a"], "i"),
            node("Or", ["n", "i"], "bad"),
            node("Where", ["bad", "zero", "a"], "kept"),
            node("Mul", ["kept", "b"]),
        ],
        {"a": (2, 3), "b": (2, 3)},
        {"zero": np.array(0.0)},
        min_opset=13,
    ),
    Case(
        "shape_ops",
        [
            node("Shape", ["a"], "s"),
            node("Size", ["a"], "n"),
            node("ConstantOfShape", ["s"], "ones32", value=from_array(np.ones(1, np.float32))),
            node("Cast", ["ones32"], "ones", to="dtype"),
            node("Range", ["zero", "n", "one"], "r"),
            node("Cast", ["r"], "rf", to="dtype"),
            node("Reshape", ["rf", "s"], "rr"),
            node("Constant", [], "k", value=from_array(np.array(2.0))),
            node("Cast", ["k"], "kd", to="dtype"),
            node("Mul", ["a", "rr"], "ar"),
            node("Mul", ["ar", "kd"], "ark"),
            node("Add", ["ark", "ones"]),
        ],
        {"a": (2, 3)},
        {"zero": np.array(0, np.int64), "one": np.array(1, np.int64)},
    ),
    Case(
        "argmax_gather",
        [
            node("ArgMax", ["a"], "i", axis=1),
            node("ArgMin", ["a"], "j", axis=1),
            node("GatherElements", ["a", "i"], "g1", axis=1),
            node("GatherElements", ["a", "j"], "g2", axis=1),
            node("Sub", ["g1", "g2"]),
        ],
        {"a": (3, 4)},
        min_opset=16,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
