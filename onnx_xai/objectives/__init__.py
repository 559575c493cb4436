"""What is explained at an output: the typed objective (a class, a seed array over an output, a
regression value), class names, and the seeds built from a model's own outputs (segmentation,
detection, dense maps) with the detector boxes they read. Needs only ``numpy``."""
