"""Reference implementations, one sub-package per model family. Nothing is imported here:
``from deepul_helpers.models.autoregressive import MADE`` loads one family explicitly."""
