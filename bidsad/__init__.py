"""bidsad: a BIDS-App for MRI + resting-state fMRI fusion classification of AD / MCI / CN."""

__version__ = "0.1.0.dev0"
__all__ = ["__version__"]
