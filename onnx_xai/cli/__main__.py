"""``python -m onnx_xai.cli``: the ``onnx-xai`` command."""

import sys

from . import main

sys.exit(main())
