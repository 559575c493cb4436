"""The VJP rules, one module per op family; importing this package registers all of them."""
from . import activation, conv, elementwise, linear, norm, pool, quantize, reduce, resize, shape  # noqa: F401
