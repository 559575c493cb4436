"""Pictures in and out: loading photos and turning them into a model's batch (its size, layout and
normalization read from the model), heatmap overlays and sheets, and a fast PNG writer. Needs
``numpy`` and Pillow."""
