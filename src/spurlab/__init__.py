"""spurlab: discover, measure and mitigate spurious features in image classifiers."""

__version__ = "0.1.0"
