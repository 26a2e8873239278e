"""deepul_helpers: data sets, reference models, training loop, metrics and plots for the
Deep Unsupervised Learning course.

Importing the package imports no model family: `from deepul_helpers.models.flows import ...`
loads a family explicitly.
"""

__version__ = "0.1.0"
