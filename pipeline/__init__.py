"""pipeline: reads feeds, newsletters and pages about AI policy, open models, security and compute,
and writes digests."""

__version__ = "0.1.0"
