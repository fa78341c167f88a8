"""system: the kernel model, its threads and the environment composed into one checkable Model.

Threads of atomic steps (threads.py), the SystemModel the checker explores (model.py), the
core-semantics §10 invariants as named properties (properties.py), and worked examples
(examples.py). Design: design.md "Threads are explicit".
"""

from dmabuf_model.system.model import (
    Action,
    EnvEvent,
    EnvStep,
    SystemModel,
    ThreadStep,
    explain_blocked,
    run_thread,
)
from dmabuf_model.system.properties import (
    CORE_PROPERTIES,
    explain,
    invariant,
    no_live_mapping_after_revoke,
)
from dmabuf_model.system.threads import (
    Branches,
    Program,
    Thread,
    World,
    driver_state,
    emit,
    emit_call,
    finish,
    goto,
    program,
    recording,
    set_driver_state,
    set_locals,
    spawn,
    system_state,
    thread,
    wait_or_timeout,
    with_world,
    world,
)

__all__ = [
    "CORE_PROPERTIES",
    "Action",
    "Branches",
    "EnvEvent",
    "EnvStep",
    "Program",
    "SystemModel",
    "Thread",
    "ThreadStep",
    "World",
    "driver_state",
    "emit",
    "emit_call",
    "explain",
    "explain_blocked",
    "finish",
    "goto",
    "invariant",
    "no_live_mapping_after_revoke",
    "program",
    "recording",
    "run_thread",
    "set_driver_state",
    "set_locals",
    "spawn",
    "system_state",
    "thread",
    "wait_or_timeout",
    "with_world",
    "world",
]
