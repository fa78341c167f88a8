"""dmabuf-model: an executable, checkable model of Linux DMA-buf sharing.

The kernel framework (kernel/), the machine under it (platform/), the real drivers (drivers/),
a generic explicit-state checker (check/) and the tools around them.
"""

__version__ = "0.1.0"
