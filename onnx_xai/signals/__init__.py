"""Signals (time series, sensor data, audio) explained over time: files read as the model takes them
(:mod:`.files`), pictures of the attribution under the signal (:mod:`.figure`), and the command
line's set of records and pictures (:mod:`.run`). The methods themselves are the library's
(:mod:`onnx_xai.runtime.methods.time_windows` perturbs signals over time)."""

from .figure import signal_figure
from .files import Signal, read_signal
from .run import SignalOptions, explain_signals

__all__ = ["Signal", "SignalOptions", "explain_signals", "read_signal", "signal_figure"]
