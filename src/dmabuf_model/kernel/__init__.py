"""The DMA-buf framework of drivers/dma-buf, one module per kernel object, kernel names kept.

Every function is a pure function of a KState: it returns the new state and the kernel's return
value (a negative errno on failure), and records WARN/BUG misuse in the state (core-semantics §10).
"""
