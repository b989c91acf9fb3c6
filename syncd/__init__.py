"""syncd: keep folders of training data in step with the Mistral AI Files API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
