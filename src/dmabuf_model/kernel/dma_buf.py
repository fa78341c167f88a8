"""dma_buf: buffer sharing between an exporter and importers (drivers/dma-buf/dma-buf.c).

Model of struct dma_buf, struct dma_buf_attachment, struct dma_buf_ops and struct
dma_buf_attach_ops (core-semantics §1-§3) and of the dma_buf_* calls of §5.1-§5.12. An optional
callback is None exactly as a NULL function pointer is in the kernel, and the predicates of §1.3
follow from which are present. The uAPI half (ioctls, llseek, poll, fdinfo) is in dma_buf_uapi.

DOC: dma buf device access (paraphrased). An exporter wraps its storage in a dma_buf
(dma_buf_export) and hands userspace a file descriptor (dma_buf_fd). An importer turns the fd back
into the buffer (dma_buf_get), attaches its device (dma_buf_attach for a static importer,
dma_buf_dynamic_attach with importer ops for a dynamic one) and asks for a device mapping
(dma_buf_map_attachment), which it gives back with dma_buf_unmap_attachment before it detaches and
drops its reference (unmap -> detach -> put). Whether the exporter may still move or take away the
storage while a mapping exists follows from which optional callbacks both sides implement and
whether dma_buf_pin succeeds: the pinned, revoked and movable flows of core-semantics §6.

DOC: locking convention (paraphrased, §4; the same table is data in kernel/locking.py). Importers
hold dmabuf->resv around dma_buf_pin, dma_buf_unpin, dma_buf_map_attachment,
dma_buf_unmap_attachment, dma_buf_vmap and dma_buf_vunmap, and must not hold it around attach,
detach, export, fd, get, put, mmap, begin/end_cpu_access or any *_unlocked call (those take it with
a NULL ww context, so holding it is a self-deadlock). The exporter holds it around
dma_buf_invalidate_mappings. The core checks "held" where the kernel asserts it and records a WARN
naming the §10 invariant (#8, #10); an op that must run unlocked while the caller holds the lock
records #9 or #11.

DOC: cpu access (paraphrased, §5.10). CPU access is only coherent between
dma_buf_begin_cpu_access and dma_buf_end_cpu_access with the same direction; begin also waits for
the implicit-sync fences in the resv.

Modelling choices (each also documented on the function concerned):
- A call whose kernel code sleeps returns state.Blocked *before* any side effect when it can tell
  that it would sleep, so the scheduler can simply retry it. Where the kernel sleeps *after* the
  exporter has done work (the static KERNEL-fence wait of dma_buf_map_attachment, the fence wait
  of dma_buf_begin_cpu_access, the list insertion of dma_buf_dynamic_attach), a two-step form is
  provided too (``*_start`` then ``*_wait``/``*_finish``) so a thread model can put the sleep
  point exactly where the kernel has it.
- NULL arguments are modelled as None.
- Allocation failures are offered by the caller with ``alloc_fails=True`` (the scheduler can
  explore both branches), as dma_resv_wait_timeout offers ``timed_out``.
- Ghost state the kernel does not keep (pin counts, live sg_tables, invalidated mappings) is kept
  to check §10 #16-#24.
- Design hooks (designs/, core-semantics §3, §5.3, §5.18, §7): the few places where the core of
  another kernel version, or of the seed thread's revoke-v1 proposal, behaves differently read
  a CorePolicy that dma_buf_export stores on the buffer (DmaBuf.policy). The default,
  MAINLINE_POLICY, is the merged 2026 core; a state never consults anything outside itself.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import IntEnum

from dmabuf_model.kernel.dma_fence import MAX_SCHEDULE_TIMEOUT
from dmabuf_model.kernel.dma_resv import (
    DmaResvUsage,
    dma_resv_assert_held,
    dma_resv_fini,
    dma_resv_held,
    dma_resv_init,
    dma_resv_lock,
    dma_resv_unlock,
    dma_resv_usage_rw,
    dma_resv_wait_timeout,
)
from dmabuf_model.kernel.errno import (
    EBADF,
    EBUSY,
    EINVAL,
    EMFILE,
    ENODEV,
    ENOENT,
    ENOMEM,
    EOVERFLOW,
)
from dmabuf_model.kernel.state import (
    NO_TID,
    AttachId,
    Blocked,
    BufId,
    Fd,
    KState,
    PickledByName,
    ResvId,
    SgtId,
    Tid,
    record,
    replace,
    tuple_set,
    warn,
)
from dmabuf_model.kernel.sync_file import sync_file_release

PAGE_SIZE = 4096
PAGE_SHIFT = 12
DMA_BUF_NAME_LEN = 32

# File flags (include/uapi/asm-generic/fcntl.h); dma_buf_export keeps O_ACCMODE | O_NONBLOCK.
O_ACCMODE = 0o3
O_RDONLY = 0o0
O_WRONLY = 0o1
O_RDWR = 0o2
O_NONBLOCK = 0o4000
O_CLOEXEC = 0o2000000

RLIMIT_NOFILE = 1024
"""Open descriptors a process may have; dma_buf_fd fails with -EMFILE beyond it (§5.2)."""

ULONG_MAX = (1 << 64) - 1


class DmaDataDirection(IntEnum):
    """enum dma_data_direction (include/linux/dma-direction.h)."""

    BIDIRECTIONAL = 0
    TO_DEVICE = 1
    FROM_DEVICE = 2
    NONE = 3


# Exporter callback types (struct dma_buf_ops, core-semantics §2). Each takes the whole state and
# the calling thread and returns the new state, plus the kernel return value where there is one.
AttachFn = Callable[[KState, Tid, AttachId], tuple[KState, int]]
DetachFn = Callable[[KState, Tid, AttachId], KState]
PinFn = Callable[[KState, Tid, AttachId], tuple[KState, int]]
UnpinFn = Callable[[KState, Tid, AttachId], KState]
MapResult = tuple[Hashable, ...] | int | None
"""map_dma_buf's result: the sg entries (opaque to the core), a negative errno, or None (NULL)."""
MapFn = Callable[[KState, Tid, AttachId, DmaDataDirection], tuple[KState, MapResult]]
UnmapFn = Callable[[KState, Tid, AttachId, SgtId, DmaDataDirection], KState]
ReleaseFn = Callable[[KState, Tid, BufId], KState]
CpuAccessFn = Callable[[KState, Tid, BufId, DmaDataDirection], tuple[KState, int]]
MmapFn = Callable[[KState, Tid, BufId, int, int], tuple[KState, int]]
"""mmap(s, tid, buf, pgoff, npages): the core has already checked the bounds (§5.11)."""
VmapFn = Callable[[KState, Tid, BufId], tuple[KState, int]]
"""vmap returns a positive cookie standing for the iosys_map address, or a negative errno."""
VunmapFn = Callable[[KState, Tid, BufId, int], KState]
InvalidateFn = Callable[[KState, Tid, AttachId], KState]


@dataclass(frozen=True, slots=True)
class DmaBufOps(PickledByName):
    """struct dma_buf_ops. Compared and hashed by ``name`` only, so states stay hashable.

    map_dma_buf, unmap_dma_buf and release are mandatory (checked by dma_buf_export, §5.1);
    pin and unpin come as a pair (§10 #2).
    """

    name: str
    map_dma_buf: MapFn | None = field(default=None, compare=False)
    unmap_dma_buf: UnmapFn | None = field(default=None, compare=False)
    release: ReleaseFn | None = field(default=None, compare=False)
    attach: AttachFn | None = field(default=None, compare=False)
    detach: DetachFn | None = field(default=None, compare=False)
    pin: PinFn | None = field(default=None, compare=False)
    unpin: UnpinFn | None = field(default=None, compare=False)
    begin_cpu_access: CpuAccessFn | None = field(default=None, compare=False)
    end_cpu_access: CpuAccessFn | None = field(default=None, compare=False)
    mmap: MmapFn | None = field(default=None, compare=False)
    vmap: VmapFn | None = field(default=None, compare=False)
    vunmap: VunmapFn | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class DmaBufAttachOps(PickledByName):
    """struct dma_buf_attach_ops (core-semantics §3). Hashed by ``name`` only.

    ``invalidate_mappings`` is optional since v7: None means the importer cannot be revoked in
    bounded time (dma_buf_attach_revocable() is false).
    """

    name: str
    allow_peer2peer: bool = False
    invalidate_mappings: InvalidateFn | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class CorePolicy:
    """What the dma-buf core of one design does where designs differ (designs/, §3, §5.18, §7).

    Stored on each buffer by dma_buf_export, so the state stays a self-contained value. Every
    switch off is the merged 2026 core (MAINLINE_POLICY):

    - ``dynamic_attach_requires_callback``: before v7, dma_buf_dynamic_attach with importer ops
      but no move_notify was a WARN and -EINVAL (§5.3 "historical behaviour").
    - ``pin_on_map_for_dynamic``: CONFIG_DMABUF_MOVE_NOTIFY=n before v7, where pin-on-map also
      applied to dynamic attachments (§5.18 "historical").
    - ``revoke_mode_negotiated``: revoke-v1 [inference]: an importer that offers
      invalidate_mappings is put in revoke mode at attach (dma_buf_attachment_is_revoke).
    - ``core_revoked_state``: revoke-v1 [inference]: dma_buf_revoke sets a one-way revoked state
      on the buffer, after which map, vmap and mmap fail with -ENODEV in the core.
    """

    dynamic_attach_requires_callback: bool = False
    pin_on_map_for_dynamic: bool = False
    revoke_mode_negotiated: bool = False
    core_revoked_state: bool = False


MAINLINE_POLICY = CorePolicy()
"""The merged 2026 core (designs/merged_2026.py): every historical or proposed switch off."""


@record
class DmaBuf:
    """Model of struct dma_buf (core-semantics §1.1).

    ``file_refcount`` is the file's reference count, which is the buffer's refcount (§5.2).
    ``attachments`` is the attachment list, newest first (§1.1). ``released`` is set once the last
    reference is gone and ops.release has run. ``file_flags`` are the O_ACCMODE|O_NONBLOCK bits
    kept from the export flags. ``poll_in_fence``/``poll_out_fence`` are the fences the poll
    callbacks wait on while their slot is active (None: the slot is idle or fired at once).
    ``policy`` is the core behaviour of the design the buffer was exported under (CorePolicy);
    ``revoked`` is revoke-v1's one-way core state, set by dma_buf_revoke [inference, §7].
    """

    size: int
    ops: DmaBufOps
    resv: ResvId
    exp_name: str = ""
    priv: Hashable = None
    name: str | None = None
    resv_owned: bool = True
    attachments: tuple[AttachId, ...] = ()
    vmapping_counter: int = 0
    vmap_ptr: int = 0
    file_refcount: int = 1
    poll_in_active: bool = False
    poll_out_active: bool = False
    ino: int = 0
    released: bool = False
    file_flags: int = O_RDWR
    poll_in_fence: int | None = None
    poll_out_fence: int | None = None
    policy: CorePolicy = MAINLINE_POLICY
    revoked: bool = False


@record
class DmaBufAttachment:
    """Model of struct dma_buf_attachment (core-semantics §1.2), plus ghost state.

    The kernel keeps no pin count or mapping state per attachment; ``pins`` (from dma_buf_pin)
    and ``map_pins`` (from pin-on-map) are ghost counters the model keeps to check §10 #16 and
    #19, and ``detached`` marks an attachment removed by dma_buf_detach (or freed after a failed
    ops.attach). An attachment that exists, is not detached and is not on its buffer's list is
    half-way through dma_buf_dynamic_attach (see dma_buf_dynamic_attach_start).
    ``revoke_mode`` is revoke-v1's negotiated revoke attachment mode (dma_buf_attachment_is_revoke,
    [inference]); always False under the merged core.
    """

    dmabuf: BufId
    dev: str
    importer_ops: DmaBufAttachOps | None = None
    importer_priv: Hashable = None
    peer2peer: bool = False
    priv: Hashable = None
    pins: int = 0
    map_pins: int = 0
    detached: bool = False
    revoke_mode: bool = False


@record
class SgTable:
    """An sg_table handed out by dma_buf_map_attachment: whose it is and what it maps.

    ``entries`` are what the exporter returned (DMA addresses and lengths, opaque to the core);
    ``live`` is cleared by dma_buf_unmap_attachment (§10 #18). ``waiting`` is set while the
    exporter has mapped but the core has not yet returned the table to the importer (between
    dma_buf_map_attachment_start and dma_buf_map_attachment_wait); ``waiter`` is that thread.
    ``invalidated`` is ghost state: dma_buf_invalidate_mappings reached this table's attachment
    while the table was live, so the importer owes an unmap (§10 #22, #23).
    """

    attach: AttachId
    dir: DmaDataDirection
    entries: tuple[Hashable, ...]
    live: bool = True
    pinned_on_map: bool = False
    waiting: bool = False
    waiter: Tid = NO_TID
    invalidated: bool = False


# --------------------------------------------------------------------------------------------
# Small accessors (not kernel API).


def _set_buf(s: KState, buf: BufId, b: DmaBuf) -> KState:
    return s.evolve(bufs=tuple_set(s.bufs, buf, b))


def _set_att(s: KState, attach: AttachId, a: DmaBufAttachment) -> KState:
    return s.evolve(attachments=tuple_set(s.attachments, attach, a))


def _set_sgt(s: KState, sgt: SgtId, t: SgTable) -> KState:
    return s.evolve(sg_tables=tuple_set(s.sg_tables, sgt, t))


def _buf_of(s: KState, attach: AttachId) -> DmaBuf:
    return s.bufs[s.attachments[attach].dmabuf]


def _use_after_free(s: KState, what: str, invariant: int) -> KState:
    """Record a use of a freed object: the kernel would touch freed memory (BUG in the model)."""
    return warn(s, invariant, f"{what} (use after free)", "BUG")


def _lock_null_ctx(s: KState, tid: Tid, resv: ResvId) -> KState | Blocked:
    """dma_resv_lock(resv, NULL): Blocked while another thread holds it, and a self-deadlock
    (Blocked on the caller itself) when the caller already holds it (§4, §10 #11)."""
    r = dma_resv_lock(s, tid, resv, None)
    if isinstance(r, Blocked):
        return r
    return r[0]


def _warn_if_held(s: KState, tid: Tid, resv: ResvId, invariant: int, what: str) -> KState:
    """Record #9 (an unlocked op runs under resv) or #11 (an unlocked entry point under resv)."""
    if tid != NO_TID and dma_resv_held(s, resv, tid):  # NO_TID: a callback, no task context
        return warn(s, invariant, what)
    return s


# --------------------------------------------------------------------------------------------
# Predicates of core-semantics §1.3 and ghost-state helpers for the properties.


def dma_buf_is_dynamic(s: KState, buf: BufId) -> bool:
    """dma_buf_is_dynamic - the exporter can move its storage: ops.pin is present.

    No lock needed. Core-semantics §1.3.
    """
    return s.bufs[buf].ops.pin is not None


def dma_buf_attachment_is_dynamic(s: KState, attach: AttachId) -> bool:
    """dma_buf_attachment_is_dynamic - the importer gave importer_ops (a dynamic importer).

    No lock needed. Core-semantics §1.3.
    """
    return s.attachments[attach].importer_ops is not None


def dma_buf_pin_on_map(s: KState, attach: AttachId) -> bool:
    """dma_buf_pin_on_map - the core pins around each mapping: pinnable exporter, static importer.

    Under a CorePolicy with ``pin_on_map_for_dynamic`` (CONFIG_DMABUF_MOVE_NOTIFY=n before v7)
    dynamic attachments are pinned on map too. No lock needed. Core-semantics §1.3, §5.6 step 1,
    §5.18.
    """
    a = s.attachments[attach]
    b = s.bufs[a.dmabuf]
    if b.ops.pin is None:
        return False
    return a.importer_ops is None or b.policy.pin_on_map_for_dynamic


def dma_buf_attach_revocable(s: KState, attach: AttachId) -> bool:
    """dma_buf_attach_revocable - the importer can be revoked in bounded time.

    True exactly when importer_ops and importer_ops.invalidate_mappings are both present; it does
    not look at pins or at the exporter. Exporters call it from ops.attach to refuse importers.
    No lock needed. Core-semantics §5.9, §10 #14.
    """
    ops = s.attachments[attach].importer_ops
    return ops is not None and ops.invalidate_mappings is not None


def dma_buf_attachment_is_revoke(s: KState, attach: AttachId) -> bool:
    """dma_buf_attachment_is_revoke - the attachment negotiated revoke-v1's revoke mode.

    revoke-v1 [inference, core-semantics §7; the predicate's name is from v2 of the series]: at
    attach an importer that offers invalidate_mappings is put in revoke mode, behaves as pinned
    until the exporter's one terminal dma_buf_revoke, and a revoking exporter refuses the others.
    Always False under the merged core, whose answer is dma_buf_attach_revocable. No lock needed.
    """
    return s.attachments[attach].revoke_mode


def live_sgts(s: KState, attach: AttachId) -> tuple[SgtId, ...]:
    """live_sgts - the sg_tables of ``attach`` the exporter has mapped and nobody has unmapped.

    Includes a table still waiting in the core (SgTable.waiting). Ghost state, §10 #16, #18.
    """
    return tuple(i for i, t in enumerate(s.sg_tables) if t.attach == attach and t.live)


def live_mappings(s: KState, attach: AttachId) -> int:
    """live_mappings - how many live sg_tables ``attach`` has (ghost state, §10 #16, #18, #24)."""
    return len(live_sgts(s, attach))


def attachment_listed(s: KState, attach: AttachId) -> bool:
    """attachment_listed - ``attach`` is on its buffer's attachment list (§5.3 step 5, §10 #15)."""
    a = s.attachments[attach]
    return attach in s.bufs[a.dmabuf].attachments


def owed_unmaps(s: KState) -> list[SgtId]:
    """owed_unmaps - live tables that an invalidation reached and the importer has not unmapped.

    An importer with invalidate_mappings must unmap each of them within bounded time (§10 #23;
    until then it may still do speculative reads, #22). A property can bound how many steps a
    table stays in this list. Ghost state, core-semantics §5.8.
    """
    return [i for i, t in enumerate(s.sg_tables) if t.live and t.invalidated]


def unsafe_unpinned_mapping(s: KState) -> list[AttachId]:
    """unsafe_unpinned_mapping - dynamic importers holding a mapping with neither pin nor callback.

    Such an importer cannot be told that its mapping goes stale: core-semantics §10 #24 and the
    §6.4 model note [inference]. A checker predicate, not a kernel warning: the kernel accepts it.
    """
    out: list[AttachId] = []
    for i, a in enumerate(s.attachments):
        if a.detached or a.importer_ops is None or a.importer_ops.invalidate_mappings is not None:
            continue
        if a.pins == 0 and a.map_pins == 0 and live_mappings(s, i) > 0:
            out.append(i)
    return out


def dma_buf_invariant_violations(s: KState) -> list[str]:
    """dma_buf_invariant_violations - the core-semantics §10 invariants of the core that ``s``
    breaks, one line each (empty when all hold).

    Covers what is a predicate of one state: #1-#2 (export), #5 (release), #13 (static importers
    never get peer2peer), #15 (listed attachments are live), #16 (pin-on-map count), #18 (live
    tables on live attachments; detach only after unmap), #19 (pins never negative; none left at
    detach), #24 (unsafe unpinned mapping) and #25 (vmap counter and pointer).
    """
    out: list[str] = []
    for bi, b in enumerate(s.bufs):
        if b.ops.map_dma_buf is None or b.ops.unmap_dma_buf is None or b.ops.release is None:
            out.append(f"#1: buf{bi} exported without map_dma_buf/unmap_dma_buf/release")
        if (b.ops.pin is None) != (b.ops.unpin is None):
            out.append(f"#2: buf{bi} has pin without unpin or unpin without pin")
        if b.released and b.attachments:
            out.append(f"#5: buf{bi} released with attachments {list(b.attachments)}")
        if b.released and b.file_refcount != 0:
            out.append(f"#4: buf{bi} released while {b.file_refcount} references remain")
        if b.vmapping_counter < 0 or (b.vmapping_counter > 0) != (b.vmap_ptr != 0):
            out.append(f"#25: buf{bi} vmapping_counter={b.vmapping_counter} vmap_ptr={b.vmap_ptr}")
        for ai in b.attachments:
            if s.attachments[ai].detached or s.attachments[ai].dmabuf != bi:
                out.append(f"#15: attach{ai} is on buf{bi}'s list but detached or foreign")
    for ai, a in enumerate(s.attachments):
        n = live_mappings(s, ai)
        if a.importer_ops is None and a.peer2peer:
            out.append(f"#13: static attach{ai} has peer2peer set")
        if a.pins < 0 or a.map_pins < 0:
            out.append(f"#19: attach{ai} pins={a.pins} map_pins={a.map_pins}")
        if dma_buf_pin_on_map(s, ai):
            pinned = sum(1 for t in live_sgts(s, ai) if s.sg_tables[t].pinned_on_map)
            if a.map_pins != pinned:
                out.append(f"#16: attach{ai} map_pins={a.map_pins} but {pinned} pinned mappings")
        elif a.map_pins:
            out.append(f"#16: attach{ai} has map_pins={a.map_pins} without pin-on-map")
        if a.detached and n:
            out.append(f"#18: attach{ai} detached with {n} live mappings")
        if a.detached and a.pins:
            out.append(f"#19: attach{ai} detached with {a.pins} pins")
    out.extend(
        f"#24: attach{ai} maps without pin or invalidate_mappings"
        for ai in unsafe_unpinned_mapping(s)
    )
    return out


# --------------------------------------------------------------------------------------------
# §5.1 export, §5.2 fd and refcount.


def dma_buf_export(
    s: KState,
    tid: Tid,
    *,
    ops: DmaBufOps | None,
    size: int,
    priv: Hashable,
    exp_name: str = "",
    resv: ResvId | None = None,
    flags: int = O_RDWR,
    owner_ok: bool = True,
    alloc_fails: bool = False,
    policy: CorePolicy = MAINLINE_POLICY,
) -> tuple[KState, BufId | int]:
    """dma_buf_export - wrap exporter storage in a new dma_buf with one file reference.

    Caller must not hold any resv (§4). ``priv`` None and ``ops`` None model NULL. Without
    ``resv`` a new embedded resv is initialised (dma_resv_init) and owned by the buffer.
    ``owner_ok=False`` models a failed module reference, ``alloc_fails=True`` a failed
    allocation. ``size`` is not checked (§5.1). ``policy`` is the core behaviour of the design
    the exporter runs under (designs/; not a kernel argument), kept on the buffer.

    Returns: the new BufId; -EINVAL (WARN #1: priv, ops, map_dma_buf, unmap_dma_buf or release
    missing; WARN #2: pin without unpin or the reverse), -ENOENT (module), -ENOMEM.
    Core-semantics §5.1, §10 #1-#3.
    """
    if (
        priv is None
        or ops is None
        or ops.map_dma_buf is None
        or ops.unmap_dma_buf is None
        or ops.release is None
    ):
        what = "dma_buf_export: priv, ops, map_dma_buf, unmap_dma_buf and release are required"
        return warn(s, 1, what), -EINVAL
    if (ops.pin is None) != (ops.unpin is None):
        return warn(s, 2, "dma_buf_export: pin and unpin must be provided together"), -EINVAL
    if not owner_ok:
        return s, -ENOENT
    if alloc_fails:
        return s, -ENOMEM
    owned = resv is None
    if resv is None:
        s, resv = dma_resv_init(s)
    buf = len(s.bufs)
    b = DmaBuf(
        size=size,
        ops=ops,
        resv=resv,
        exp_name=exp_name,
        priv=priv,
        resv_owned=owned,
        ino=buf + 1,
        file_flags=flags & (O_ACCMODE | O_NONBLOCK),
        policy=policy,
    )
    return s.evolve(bufs=(*s.bufs, b)), buf


def dma_buf_fd(s: KState, tid: Tid, buf: BufId | None, flags: int) -> tuple[KState, Fd | int]:
    """dma_buf_fd - install the buffer's file in a new descriptor.

    The caller's file reference moves to the descriptor table; no reference is taken. Caller
    must not hold the resv (§4). ``flags`` (O_CLOEXEC) are not modelled further.

    Returns: the fd; -EINVAL (NULL or released buffer), -EMFILE (RLIMIT_NOFILE descriptors open).
    Core-semantics §5.2.
    """
    if buf is None or s.bufs[buf].released:
        return s, -EINVAL
    if len(s.fd_table) >= RLIMIT_NOFILE:
        return s, -EMFILE
    fd = s.next_fd
    return s.evolve(fd_table=(*s.fd_table, (fd, "dma_buf", buf)), next_fd=fd + 1), fd


def fd_lookup(s: KState, fd: Fd) -> tuple[str, int] | None:
    """fd_lookup - the (kind, object id) an open descriptor refers to, or None (not kernel API)."""
    for entry_fd, kind, obj in s.fd_table:
        if entry_fd == fd:
            return kind, obj
    return None


def dma_buf_get(s: KState, tid: Tid, fd: Fd) -> tuple[KState, BufId | int]:
    """dma_buf_get - the dma_buf behind ``fd``, with a new file reference for the caller.

    Returns: the BufId; -EBADF (no such descriptor), -EINVAL (not a dma-buf file).
    Core-semantics §5.2, §10 #4.
    """
    entry = fd_lookup(s, fd)
    if entry is None:
        return s, -EBADF
    kind, obj = entry
    if kind != "dma_buf":
        return s, -EINVAL
    return get_dma_buf(s, obj), obj


def get_dma_buf(s: KState, buf: BufId) -> KState:
    """get_dma_buf - take one more file reference on the buffer (§5.2, §10 #4)."""
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"get_dma_buf on released buf{buf}", 4)
    return _set_buf(s, buf, replace(b, file_refcount=b.file_refcount + 1))


def dma_buf_put(s: KState, tid: Tid, buf: BufId | None) -> KState:
    """dma_buf_put - drop a file reference; the last one releases the buffer.

    Caller must not hold the resv (§4: ops.release runs unlocked; WARN #9 otherwise). NULL:
    WARN and nothing else. Final release, in the kernel's order: BUG (#5) if vmapping_counter is
    not 0 or a poll slot is active (the model records it and stops there); ops.release exactly
    once (#6); the embedded resv is finalised; WARN (#5) if attachments are left.
    Core-semantics §5.2, §10 #4-#6.
    """
    if buf is None:
        return warn(s, 4, "dma_buf_put(NULL)")
    b = s.bufs[buf]
    if b.released or b.file_refcount <= 0:
        return _use_after_free(s, f"dma_buf_put on released buf{buf}", 4)
    b = replace(b, file_refcount=b.file_refcount - 1)
    s = _set_buf(s, buf, b)
    if b.file_refcount > 0:
        return s
    return _dma_buf_release(s, tid, buf)


def _dma_buf_release(s: KState, tid: Tid, buf: BufId) -> KState:
    """The file release and dentry release hooks run at the last reference (§5.2)."""
    b = s.bufs[buf]
    if b.vmapping_counter != 0:
        return warn(s, 5, f"dma_buf release of buf{buf} with vmapping_counter != 0", "BUG")
    if b.poll_in_active or b.poll_out_active:
        return warn(s, 5, f"dma_buf release of buf{buf} with an active poll callback", "BUG")
    s = _warn_if_held(s, tid, b.resv, 9, "dma_buf release: ops.release called with resv held")
    assert b.ops.release is not None  # checked at export
    s = b.ops.release(s, tid, buf)
    if b.resv_owned:
        s = dma_resv_fini(s, b.resv)
    b = s.bufs[buf]
    if b.attachments:
        s = warn(s, 5, f"dma_buf release of buf{buf} with attachments left")
    return _set_buf(s, buf, replace(b, released=True))


def close_fd(s: KState, tid: Tid, fd: Fd) -> tuple[KState, int]:
    """close_fd - close(2) on a dma-buf descriptor: remove it and drop its file reference.

    Not a dma-buf.c function; it is how userspace drops the reference dma_buf_fd handed to the
    descriptor table (§5.2, §10 #4). A sync_file descriptor releases its sync_file
    (sync_file_release, §9.15).

    Returns: 0; -EBADF if ``fd`` is not open.
    """
    entry = fd_lookup(s, fd)
    if entry is None:
        return s, -EBADF
    s = s.evolve(fd_table=tuple(e for e in s.fd_table if e[0] != fd))
    kind, obj = entry
    if kind == "dma_buf":
        s = dma_buf_put(s, tid, obj)
    elif kind == "sync_file":
        s = sync_file_release(s, obj)
    return s, 0


# --------------------------------------------------------------------------------------------
# §5.3 attach, §5.4 detach.


def dma_buf_dynamic_attach_start(
    s: KState,
    tid: Tid,
    buf: BufId | None,
    dev: str | None,
    importer_ops: DmaBufAttachOps | None,
    importer_priv: Hashable = None,
    *,
    alloc_fails: bool = False,
) -> tuple[KState, AttachId | int]:
    """dma_buf_dynamic_attach_start - steps 1-4 of dma_buf_dynamic_attach (two-step form).

    Allocates the attachment, copies peer2peer from importer_ops (False for a static importer,
    §10 #13) and calls ops.attach unlocked (WARN #9 if the caller holds the resv). The attachment
    is not on the list yet: dma_buf_dynamic_attach_finish takes the resv and lists it, so a
    thread model can let other threads run in between, as the kernel can.

    Design hooks (CorePolicy): before v7 importer ops without the callback were a WARN and
    -EINVAL (``dynamic_attach_requires_callback``); under revoke-v1 an importer that offers the
    callback is put in revoke mode (``revoke_mode_negotiated``, [inference]).

    Returns: the AttachId; -EINVAL (WARN: NULL buffer or device; before v7 also importer ops
    without the callback), -ENOMEM, or ops.attach's error (the attachment is then freed).
    Core-semantics §5.3 steps 1-4, §3, §7.
    """
    if buf is None or dev is None:
        return warn(s, 0, "dma_buf_dynamic_attach: NULL dmabuf or dev"), -EINVAL
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"dma_buf_dynamic_attach on released buf{buf}", 4), -EINVAL
    has_callback = importer_ops is not None and importer_ops.invalidate_mappings is not None
    if b.policy.dynamic_attach_requires_callback and importer_ops is not None and not has_callback:
        what = "dma_buf_dynamic_attach: importer_ops without move_notify"
        return warn(s, 0, what), -EINVAL
    if alloc_fails:
        return s, -ENOMEM
    attach = len(s.attachments)
    a = DmaBufAttachment(
        dmabuf=buf,
        dev=dev,
        importer_ops=importer_ops,
        importer_priv=importer_priv,
        peer2peer=importer_ops is not None and importer_ops.allow_peer2peer,
        revoke_mode=b.policy.revoke_mode_negotiated and has_callback,
    )
    s = s.evolve(attachments=(*s.attachments, a))
    if b.ops.attach is not None:
        s = _warn_if_held(s, tid, b.resv, 9, "dma_buf_dynamic_attach: ops.attach under resv")
        s, ret = b.ops.attach(s, tid, attach)
        if ret != 0:
            a = s.attachments[attach]
            return _set_att(s, attach, replace(a, detached=True)), ret
    return s, attach


def dma_buf_dynamic_attach_finish(
    s: KState, tid: Tid, attach: AttachId
) -> tuple[KState, AttachId] | Blocked:
    """dma_buf_dynamic_attach_finish - step 5: list the attachment at the head, under the resv.

    Takes the resv with a NULL ctx: Blocked while another thread holds it, self-deadlock
    (Blocked on the caller) if the caller holds it (§4, §10 #11). Returns the AttachId.
    Core-semantics §5.3 step 5, §10 #7.
    """
    a = s.attachments[attach]
    b = s.bufs[a.dmabuf]
    r = _lock_null_ctx(s, tid, b.resv)
    if isinstance(r, Blocked):
        return r
    s = r
    b = s.bufs[a.dmabuf]
    s = _set_buf(s, a.dmabuf, replace(b, attachments=(attach, *b.attachments)))
    return dma_resv_unlock(s, tid, b.resv), attach


def dma_buf_dynamic_attach(
    s: KState,
    tid: Tid,
    buf: BufId | None,
    dev: str | None,
    importer_ops: DmaBufAttachOps | None,
    importer_priv: Hashable = None,
    *,
    alloc_fails: bool = False,
) -> tuple[KState, AttachId | int] | Blocked:
    """dma_buf_dynamic_attach - attach a device; dynamic when ``importer_ops`` is given.

    Caller must not hold the resv. One atomic step: when the resv is held (by another thread,
    or by the caller: self-deadlock, §10 #11) the call is Blocked before ops.attach runs, so a
    retry is safe. The attachment is not pinned, mapped or cached, and invalidate_mappings is not
    required (§5.3). Use the _start/_finish pair to model the window between ops.attach and the
    list insertion.

    Returns: the AttachId; -EINVAL (WARN, NULL), -ENOMEM, or ops.attach's error (-EBUSY,
    -EOPNOTSUPP, -ENODEV ...). Core-semantics §5.3, §10 #7, #9, #13.
    """
    if buf is None or dev is None:
        return warn(s, 0, "dma_buf_dynamic_attach: NULL dmabuf or dev"), -EINVAL
    probe = _lock_null_ctx(s, tid, s.bufs[buf].resv)
    if isinstance(probe, Blocked):
        return probe
    s, ret = dma_buf_dynamic_attach_start(
        s, tid, buf, dev, importer_ops, importer_priv, alloc_fails=alloc_fails
    )
    if ret < 0:
        return s, ret
    return dma_buf_dynamic_attach_finish(s, tid, ret)


def dma_buf_attach(
    s: KState, tid: Tid, buf: BufId | None, dev: str | None, *, alloc_fails: bool = False
) -> tuple[KState, AttachId | int] | Blocked:
    """dma_buf_attach - attach a static importer: dma_buf_dynamic_attach with no importer ops.

    The core pins around each mapping if the exporter can pin, and waits for KERNEL fences at
    map time (§5.6). Same locking and errors as dma_buf_dynamic_attach. Core-semantics §5.3.
    """
    return dma_buf_dynamic_attach(s, tid, buf, dev, None, None, alloc_fails=alloc_fails)


def dma_buf_detach(
    s: KState, tid: Tid, buf: BufId | None, attach: AttachId | None
) -> KState | Blocked:
    """dma_buf_detach - take the attachment off the list and free it.

    Caller must not hold the resv: it is taken with a NULL ctx (Blocked while held, self-deadlock
    when the caller holds it). WARN and nothing else for NULL or a foreign attachment. Then
    ops.detach runs unlocked. Outstanding mappings and pins are not undone: unmapping and
    unpinning first is the importer's duty (§10 #18, #19; see dma_buf_invariant_violations).
    Core-semantics §5.4, §10 #7, #9, #15.
    """
    if buf is None or attach is None or s.attachments[attach].dmabuf != buf:
        return warn(s, 0, "dma_buf_detach: NULL argument or attachment of another dma_buf")
    a = s.attachments[attach]
    if a.detached:
        return _use_after_free(s, f"dma_buf_detach of detached attach{attach}", 18)
    b = s.bufs[buf]
    r = _lock_null_ctx(s, tid, b.resv)
    if isinstance(r, Blocked):
        return r
    s = r
    b = s.bufs[buf]
    s = _set_buf(s, buf, replace(b, attachments=tuple(x for x in b.attachments if x != attach)))
    s = dma_resv_unlock(s, tid, b.resv)
    if b.ops.detach is not None:
        s = b.ops.detach(s, tid, attach)
    a = s.attachments[attach]
    return _set_att(s, attach, replace(a, detached=True))


# --------------------------------------------------------------------------------------------
# §5.5 pin / unpin.


def _attach_usable(s: KState, attach: AttachId | None, fn: str) -> tuple[KState, bool]:
    """WARN on NULL, BUG on a detached attachment or released buffer; True when usable."""
    if attach is None:
        return warn(s, 0, f"{fn}: NULL attachment"), False
    a = s.attachments[attach]
    if a.detached:
        return _use_after_free(s, f"{fn} on detached attach{attach}", 18), False
    if s.bufs[a.dmabuf].released:
        return _use_after_free(s, f"{fn} on attach{attach} of a released dma_buf", 6), False
    return s, True


def dma_buf_pin(s: KState, tid: Tid, attach: AttachId | None) -> tuple[KState, int]:
    """dma_buf_pin - keep the storage of a dynamic attachment where it is.

    Caller holds the resv (asserted: WARN #8). Meant for dynamic importers only: a static
    attachment is a WARN (#19) and the call goes on. Calls ops.pin if present; without it the
    storage never moves and the call returns 0. A success adds one to the ghost pin count.

    Returns: 0, or the exporter's error. Core-semantics §5.5, §10 #8, #19, #20.
    """
    s, ok = _attach_usable(s, attach, "dma_buf_pin")
    if not ok or attach is None:
        return s, -EINVAL
    a = s.attachments[attach]
    b = s.bufs[a.dmabuf]
    if a.importer_ops is None:
        s = warn(s, 19, "dma_buf_pin on a static attachment")
    s = dma_resv_assert_held(s, b.resv, tid, "dma_buf_pin without resv held", invariant=8)
    ret = 0
    if b.ops.pin is not None:
        s, ret = b.ops.pin(s, tid, attach)
    if ret == 0:
        a = s.attachments[attach]
        s = _set_att(s, attach, replace(a, pins=a.pins + 1))
    return s, ret


def dma_buf_unpin(s: KState, tid: Tid, attach: AttachId | None) -> KState:
    """dma_buf_unpin - undo one dma_buf_pin; the exporter may move the storage again.

    Caller holds the resv (asserted: WARN #8). A static attachment is a WARN (#19) and the call
    goes on. An unpin without a matching pin is recorded as WARN #19 (the kernel keeps no count;
    the exporter's unpin would underflow its own). Calls ops.unpin if present.
    Core-semantics §5.5, §10 #8, #19.
    """
    s, ok = _attach_usable(s, attach, "dma_buf_unpin")
    if not ok or attach is None:
        return s
    a = s.attachments[attach]
    b = s.bufs[a.dmabuf]
    if a.importer_ops is None:
        s = warn(s, 19, "dma_buf_unpin on a static attachment")
    s = dma_resv_assert_held(s, b.resv, tid, "dma_buf_unpin without resv held", invariant=8)
    if a.pins == 0:
        s = warn(s, 19, "dma_buf_unpin without a matching dma_buf_pin")
    if b.ops.unpin is not None:
        s = b.ops.unpin(s, tid, attach)
    a = s.attachments[attach]
    return _set_att(s, attach, replace(a, pins=max(0, a.pins - 1)))


# --------------------------------------------------------------------------------------------
# §5.6 map, §5.7 unmap.


def _unwind_map(s: KState, tid: Tid, sgt: SgtId) -> KState:
    """The error path of §5.6: ops.unmap_dma_buf, then the pin-on-map undo."""
    t = s.sg_tables[sgt]
    b = _buf_of(s, t.attach)
    assert b.ops.unmap_dma_buf is not None
    s = b.ops.unmap_dma_buf(s, tid, t.attach, sgt, t.dir)
    s = _set_sgt(s, sgt, replace(s.sg_tables[sgt], live=False, waiting=False, waiter=NO_TID))
    if t.pinned_on_map:
        s = _undo_map_pin(s, tid, t.attach)
    return s


def _undo_map_pin(s: KState, tid: Tid, attach: AttachId) -> KState:
    b = _buf_of(s, attach)
    assert b.ops.unpin is not None
    s = b.ops.unpin(s, tid, attach)
    a = s.attachments[attach]
    return _set_att(s, attach, replace(a, map_pins=a.map_pins - 1))


def dma_buf_map_attachment_start(
    s: KState, tid: Tid, attach: AttachId | None, dir: DmaDataDirection
) -> tuple[KState, SgtId | int]:
    """dma_buf_map_attachment_start - steps 1-2 of dma_buf_map_attachment (two-step form).

    Caller holds the resv (asserted: WARN #8). Pin-on-map (pinnable exporter, static importer):
    ops.pin first, WARN #20 if it says -EBUSY. Then ops.map_dma_buf; NULL becomes -ENOMEM and an
    error undoes the pin. On success the table is recorded as live but *waiting*: the core has
    not returned it yet. dma_buf_map_attachment_wait does step 3 (the KERNEL-fence wait of static
    importers) and hands it over; a thread model puts its sleep point between the two calls,
    where the kernel sleeps with the resv held.

    revoke-v1 [inference, §7]: a buffer in the core revoked state fails with -ENODEV before
    the exporter is asked (never under the merged core, where nothing sets it).

    Returns: the SgtId (waiting), or -EINVAL (WARN: NULL attachment), -ENODEV (core revoked),
    the pin error or the map error. Core-semantics §5.6 steps 1-2, §10 #8, #16, #20.
    """
    s, ok = _attach_usable(s, attach, "dma_buf_map_attachment")
    if not ok or attach is None:
        return s, -EINVAL
    a = s.attachments[attach]
    b = s.bufs[a.dmabuf]
    s = dma_resv_assert_held(
        s, b.resv, tid, "dma_buf_map_attachment without resv held", invariant=8
    )
    if b.revoked:
        return s, -ENODEV
    pin_on_map = dma_buf_pin_on_map(s, attach)
    if pin_on_map:
        assert b.ops.pin is not None
        s, ret = b.ops.pin(s, tid, attach)
        if ret == -EBUSY:
            s = warn(s, 20, "dma_buf_map_attachment: exporter pin returned -EBUSY")
        if ret != 0:
            return s, ret
        a = s.attachments[attach]
        s = _set_att(s, attach, replace(a, map_pins=a.map_pins + 1))
    assert b.ops.map_dma_buf is not None
    s, res = b.ops.map_dma_buf(s, tid, attach, dir)
    if res is None or isinstance(res, int):
        if pin_on_map:
            s = _undo_map_pin(s, tid, attach)
        return s, -ENOMEM if res is None else res
    sgt = len(s.sg_tables)
    t = SgTable(attach, dir, res, pinned_on_map=pin_on_map, waiting=True, waiter=tid)
    return s.evolve(sg_tables=(*s.sg_tables, t)), sgt


def dma_buf_map_attachment_wait(
    s: KState, tid: Tid, sgt: SgtId, *, signal_pending: bool = False, alloc_fails: bool = False
) -> tuple[KState, SgtId | int] | Blocked:
    """dma_buf_map_attachment_wait - steps 3-4 of dma_buf_map_attachment (two-step form).

    Static attachments only: wait, interruptibly and without limit, for every KERNEL fence of
    the resv (Blocked while one is unsignalled). A signal (``signal_pending``) makes the wait
    return -ERESTARTSYS, which unmaps and unpins. Dynamic attachments get no wait (§10 #17).
    ``alloc_fails`` models the CONFIG_DMABUF_DEBUG copy failing (-ENOMEM, unwound the same way).
    Caller holds the resv (the thread that called _start).

    Returns: the SgtId, now handed to the importer; -ERESTARTSYS; -ENOMEM.
    Core-semantics §5.6 steps 3-4, §10 #17.
    """
    t = s.sg_tables[sgt]
    if not t.live or not t.waiting:
        raise ValueError(f"dma_buf_map_attachment_wait: sg_table {sgt} is not waiting in the core")
    a = s.attachments[t.attach]
    if a.importer_ops is None:
        r = dma_resv_wait_timeout(
            s,
            tid,
            s.bufs[a.dmabuf].resv,
            DmaResvUsage.KERNEL,
            True,
            MAX_SCHEDULE_TIMEOUT,
            signal_pending=signal_pending,
        )
        if isinstance(r, Blocked):
            return r
        s, ret = r
        if ret < 0:
            return _unwind_map(s, tid, sgt), ret
    if alloc_fails:
        return _unwind_map(s, tid, sgt), -ENOMEM
    return _set_sgt(s, sgt, replace(s.sg_tables[sgt], waiting=False, waiter=NO_TID)), sgt


def dma_buf_map_attachment(
    s: KState,
    tid: Tid,
    attach: AttachId | None,
    dir: DmaDataDirection,
    *,
    signal_pending: bool = False,
    alloc_fails: bool = False,
) -> tuple[KState, SgtId | int] | Blocked:
    """dma_buf_map_attachment - map the buffer for the attached device; returns an sg_table.

    Caller holds the resv (asserted: WARN #8). Pins first for static importers of a pinnable
    exporter, calls ops.map_dma_buf, and for static importers waits for the KERNEL fences.
    Each call reaches the exporter; nothing is cached (§5.6).

    Modelling choice: this one-step form checks the KERNEL fences *before* calling the exporter
    and returns Blocked (no side effect) while one is unsignalled, so a retry after the fence
    signals pins only once. That is the kernel's outcome because the caller holds the resv
    throughout, so no other thread can add a KERNEL fence in between. If the exporter's own
    pin/map_dma_buf leave an unsignalled KERNEL fence (its pipelined move, which §2 says pin
    should have waited for), this form cannot sleep after the exporter's work: it records WARN
    #17 naming the two-step form (dma_buf_map_attachment_start + _wait), which models that case
    exactly, and returns the table.

    Returns: the SgtId; -EINVAL (WARN: NULL), the pin error (-EBUSY also WARNs, #20), the map
    error or -ENOMEM for NULL, -ERESTARTSYS (static wait interrupted), -ENOMEM (debug copy).
    Core-semantics §5.6, §10 #8, #16, #17, #20.
    """
    if attach is not None and not s.attachments[attach].detached:
        a = s.attachments[attach]
        if a.importer_ops is None and not signal_pending:
            probe = dma_resv_wait_timeout(
                s,
                tid,
                s.bufs[a.dmabuf].resv,
                DmaResvUsage.KERNEL,
                True,
                MAX_SCHEDULE_TIMEOUT,
            )
            if isinstance(probe, Blocked):
                return probe
    s, ret = dma_buf_map_attachment_start(s, tid, attach, dir)
    if ret < 0:
        return s, ret
    r = dma_buf_map_attachment_wait(
        s, tid, ret, signal_pending=signal_pending, alloc_fails=alloc_fails
    )
    if not isinstance(r, Blocked):
        return r
    s = warn(
        s,
        17,
        "dma_buf_map_attachment: the exporter's pin/map_dma_buf left an unsignalled KERNEL "
        "fence; model it with dma_buf_map_attachment_start + dma_buf_map_attachment_wait",
    )
    return _set_sgt(s, ret, replace(s.sg_tables[ret], waiting=False, waiter=NO_TID)), ret


def dma_buf_unmap_attachment(
    s: KState, tid: Tid, attach: AttachId | None, sgt: SgtId | None, dir: DmaDataDirection
) -> KState:
    """dma_buf_unmap_attachment - give back a table from dma_buf_map_attachment.

    Caller holds the resv (asserted: WARN #8). WARN and nothing else for NULL. Calls
    ops.unmap_dma_buf, then ops.unpin when pin-on-map applies. A table that is not live on this
    attachment (double unmap, wrong attachment, or still waiting in the core) is recorded as
    WARN #18 and the exporter is not called (the kernel would free it twice).
    Core-semantics §5.7, §10 #8, #16, #18.
    """
    if sgt is None:
        return warn(s, 0, "dma_buf_unmap_attachment: NULL sg_table")
    s, ok = _attach_usable(s, attach, "dma_buf_unmap_attachment")
    if not ok or attach is None:
        return s
    b = _buf_of(s, attach)
    s = dma_resv_assert_held(
        s, b.resv, tid, "dma_buf_unmap_attachment without resv held", invariant=8
    )
    t = s.sg_tables[sgt]
    if t.attach != attach or not t.live or t.waiting:
        return warn(s, 18, f"dma_buf_unmap_attachment of sg_table {sgt} not live on attach{attach}")
    assert b.ops.unmap_dma_buf is not None
    s = b.ops.unmap_dma_buf(s, tid, attach, sgt, dir)
    s = _set_sgt(s, sgt, replace(s.sg_tables[sgt], live=False))
    if dma_buf_pin_on_map(s, attach):
        s = _undo_map_pin(s, tid, attach)
    return s


def _resv_of_attach(s: KState, attach: AttachId | None) -> ResvId | None:
    if attach is None:
        return None
    return _buf_of(s, attach).resv


def dma_buf_map_attachment_unlocked(
    s: KState,
    tid: Tid,
    attach: AttachId | None,
    dir: DmaDataDirection,
    *,
    signal_pending: bool = False,
    alloc_fails: bool = False,
) -> tuple[KState, SgtId | int] | Blocked:
    """dma_buf_map_attachment_unlocked - take the resv (NULL ctx), map, drop it: one step.

    Caller must not hold the resv (self-deadlock: Blocked on the caller, §10 #11); Blocked while
    another thread holds it or while a static importer's KERNEL fence is unsignalled. Note that
    the model then sleeps *before* taking the lock, where the kernel sleeps holding it; compose
    dma_resv_lock + dma_buf_map_attachment + dma_resv_unlock as three steps when that matters.

    Returns: as dma_buf_map_attachment. Core-semantics §5.6, §4.
    """
    resv = _resv_of_attach(s, attach)
    if resv is None:
        return warn(s, 0, "dma_buf_map_attachment_unlocked: NULL attachment"), -EINVAL
    r = _lock_null_ctx(s, tid, resv)
    if isinstance(r, Blocked):
        return r
    m = dma_buf_map_attachment(
        r, tid, attach, dir, signal_pending=signal_pending, alloc_fails=alloc_fails
    )
    if isinstance(m, Blocked):
        return m
    return dma_resv_unlock(m[0], tid, resv), m[1]


def dma_buf_unmap_attachment_unlocked(
    s: KState, tid: Tid, attach: AttachId | None, sgt: SgtId | None, dir: DmaDataDirection
) -> KState | Blocked:
    """dma_buf_unmap_attachment_unlocked - take the resv (NULL ctx), unmap, drop it: one step.

    WARN and nothing else for NULL. Blocked while the resv is held (self-deadlock when by the
    caller, §10 #11). Core-semantics §5.7, §4.
    """
    resv = _resv_of_attach(s, attach)
    if resv is None or sgt is None:
        return warn(s, 0, "dma_buf_unmap_attachment_unlocked: NULL argument")
    r = _lock_null_ctx(s, tid, resv)
    if isinstance(r, Blocked):
        return r
    return dma_resv_unlock(dma_buf_unmap_attachment(r, tid, attach, sgt, dir), tid, resv)


# --------------------------------------------------------------------------------------------
# §5.8 invalidate_mappings.


def dma_buf_invalidate_mappings(s: KState, tid: Tid, buf: BufId) -> KState:
    """dma_buf_invalidate_mappings - tell every revocable importer its mappings are going away.

    Caller (the exporter) holds the resv (asserted: WARN #10). Walks the attachment list newest
    first and, synchronously under the lock, calls importer_ops.invalidate_mappings for exactly
    the attachments for which dma_buf_attach_revocable() is true, pinned ones included; static
    attachments and dynamic ones without the callback are skipped. Known as
    dma_buf_move_notify until v7.1.

    When it returns importers may still access the memory: the caller waits for the resv fences
    (full access until they signal) and then for the unmaps (speculative reads until then) when
    it needs all access stopped, as the revoke sequence does. Ghost state: each live table of an
    invalidated attachment is marked ``invalidated`` before its callback runs (§10 #22, #23).
    Core-semantics §5.8, §10 #10, #15.
    """
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"dma_buf_invalidate_mappings on released buf{buf}", 6)
    s = dma_resv_assert_held(
        s, b.resv, tid, "dma_buf_invalidate_mappings without resv held", invariant=10
    )
    return _call_invalidate_mappings(s, tid, buf)


def _call_invalidate_mappings(s: KState, tid: Tid, buf: BufId) -> KState:
    """Call importer_ops.invalidate_mappings for every attachment that has it, newest first."""
    for attach in s.bufs[buf].attachments:
        ops = s.attachments[attach].importer_ops
        if ops is None or ops.invalidate_mappings is None:
            continue
        for sgt in live_sgts(s, attach):
            s = _set_sgt(s, sgt, replace(s.sg_tables[sgt], invalidated=True))
        s = ops.invalidate_mappings(s, tid, attach)
    return s


def dma_buf_revoke(s: KState, tid: Tid, buf: BufId) -> KState:
    """dma_buf_revoke - revoke-v1's exporter call: kill the buffer for good [inference].

    Reconstructed from the seed thread's v1 proposal (core-semantics §7; designs/revoke_v1.py):
    caller (the exporter) holds the resv (asserted: WARN #10). Sets the one-way core revoked
    state, after which dma_buf_map_attachment, dma_buf_vmap and mmap fail with -ENODEV for the
    rest of the buffer's life, then calls invalidate_mappings on every attachment that has it
    (revoke-mode attachments take it as the terminal revoke; dynamic ones as a move they can
    never map again after). A second call only invalidates again. The two waits of §5.8 (fences,
    then unmaps) stay the exporter's job, as with dma_buf_invalidate_mappings.
    Under the merged core nobody calls it (MAINLINE_POLICY has no core revoked state).
    """
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"dma_buf_revoke on released buf{buf}", 6)
    s = dma_resv_assert_held(s, b.resv, tid, "dma_buf_revoke without resv held", invariant=10)
    if not b.revoked:
        s = _set_buf(s, buf, replace(s.bufs[buf], revoked=True))
    return _call_invalidate_mappings(s, tid, buf)


# --------------------------------------------------------------------------------------------
# §5.12 vmap / vunmap.


def dma_buf_vmap(s: KState, tid: Tid, buf: BufId | None) -> tuple[KState, int]:
    """dma_buf_vmap - a kernel virtual mapping of the whole buffer, refcounted.

    Caller holds the resv (asserted: WARN #8). ops.vmap runs only on the first user (0 -> 1,
    §10 #26); later users get the cached pointer. BUG (#25) if the cache and the counter
    disagree. An exporter error is a WARN_ON_ONCE in the spec's kernel (a 2026 syzkaller patch
    drops that WARN; the model follows the spec) and leaves the counter at 0.

    Returns: the map cookie (> 0, standing for the iosys_map the kernel fills in and its 0
    return); -EINVAL (WARN: NULL buffer; or no ops.vmap); -ENODEV (revoke-v1's core revoked
    state, [inference]); the exporter's error. Core-semantics §5.12, §10 #8, #25, #26.
    """
    if buf is None:
        return warn(s, 0, "dma_buf_vmap: NULL dmabuf"), -EINVAL
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"dma_buf_vmap on released buf{buf}", 6), -EINVAL
    s = dma_resv_assert_held(s, b.resv, tid, "dma_buf_vmap without resv held", invariant=8)
    if b.ops.vmap is None:
        return s, -EINVAL
    if b.revoked:  # revoke-v1's core revoked state [inference, §7]
        return s, -ENODEV
    if b.vmapping_counter > 0:
        if b.vmap_ptr == 0:
            return warn(s, 25, "dma_buf_vmap: counter set but no cached vmap", "BUG"), -EINVAL
        return _set_buf(s, buf, replace(b, vmapping_counter=b.vmapping_counter + 1)), b.vmap_ptr
    if b.vmap_ptr != 0:
        return warn(s, 25, "dma_buf_vmap: cached vmap with a zero counter", "BUG"), -EINVAL
    s, ret = b.ops.vmap(s, tid, buf)
    if ret < 0:
        return warn(s, 0, "dma_buf_vmap: exporter vmap failed"), ret
    if ret == 0:
        raise ValueError(f"{b.ops.name}.vmap returned 0; return a positive map cookie")
    b = s.bufs[buf]
    return _set_buf(s, buf, replace(b, vmapping_counter=1, vmap_ptr=ret)), ret


def dma_buf_vunmap(s: KState, tid: Tid, buf: BufId | None, map: int) -> KState:
    """dma_buf_vunmap - drop one vmap user; the last one calls ops.vunmap (1 -> 0, §10 #26).

    Caller holds the resv (asserted: WARN #8). WARN and nothing else for NULL. BUG (#25) if
    nothing is cached, the counter is 0 or ``map`` is not the cached pointer; the model records
    it and changes nothing. Core-semantics §5.12, §10 #25, #26.
    """
    if buf is None:
        return warn(s, 0, "dma_buf_vunmap: NULL dmabuf")
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"dma_buf_vunmap on released buf{buf}", 6)
    s = dma_resv_assert_held(s, b.resv, tid, "dma_buf_vunmap without resv held", invariant=8)
    if b.vmap_ptr == 0 or b.vmapping_counter == 0 or map != b.vmap_ptr:
        return warn(s, 25, "dma_buf_vunmap: no vmap, zero counter or another pointer", "BUG")
    if b.vmapping_counter > 1:
        return _set_buf(s, buf, replace(b, vmapping_counter=b.vmapping_counter - 1))
    if b.ops.vunmap is not None:
        s = b.ops.vunmap(s, tid, buf, map)
    b = s.bufs[buf]
    return _set_buf(s, buf, replace(b, vmapping_counter=0, vmap_ptr=0))


def dma_buf_vmap_unlocked(s: KState, tid: Tid, buf: BufId | None) -> tuple[KState, int] | Blocked:
    """dma_buf_vmap_unlocked - take the resv (NULL ctx), vmap, drop it: one step.

    Blocked while the resv is held (self-deadlock when by the caller, §10 #11). Returns as
    dma_buf_vmap. Core-semantics §5.12.
    """
    if buf is None:
        return warn(s, 0, "dma_buf_vmap_unlocked: NULL dmabuf"), -EINVAL
    resv = s.bufs[buf].resv
    r = _lock_null_ctx(s, tid, resv)
    if isinstance(r, Blocked):
        return r
    s, ret = dma_buf_vmap(r, tid, buf)
    return dma_resv_unlock(s, tid, resv), ret


def dma_buf_vunmap_unlocked(s: KState, tid: Tid, buf: BufId | None, map: int) -> KState | Blocked:
    """dma_buf_vunmap_unlocked - take the resv (NULL ctx), vunmap, drop it: one step.

    Blocked while the resv is held (self-deadlock when by the caller, §10 #11). §5.12.
    """
    if buf is None:
        return warn(s, 0, "dma_buf_vunmap_unlocked: NULL dmabuf")
    resv = s.bufs[buf].resv
    r = _lock_null_ctx(s, tid, resv)
    if isinstance(r, Blocked):
        return r
    return dma_resv_unlock(dma_buf_vunmap(r, tid, buf, map), tid, resv)


# --------------------------------------------------------------------------------------------
# §5.10 CPU access.


def _cpu_write(dir: DmaDataDirection) -> bool:
    return dir in (DmaDataDirection.BIDIRECTIONAL, DmaDataDirection.TO_DEVICE)


def dma_buf_begin_cpu_access_start(
    s: KState, tid: Tid, buf: BufId | None, dir: DmaDataDirection
) -> tuple[KState, int]:
    """dma_buf_begin_cpu_access_start - the exporter half of dma_buf_begin_cpu_access.

    Caller must not hold the resv (the kernel declares it might take it: WARN #11). Calls
    ops.begin_cpu_access if present. When it returns 0, call dma_buf_begin_cpu_access_wait for
    the fence wait (two-step form; the core keeps nothing in between).

    Returns: 0; -EINVAL (WARN: NULL); the exporter's error. Core-semantics §5.10.
    """
    if buf is None:
        return warn(s, 0, "dma_buf_begin_cpu_access: NULL dmabuf"), -EINVAL
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"dma_buf_begin_cpu_access on released buf{buf}", 6), -EINVAL
    s = _warn_if_held(s, tid, b.resv, 11, "dma_buf_begin_cpu_access with resv held")
    if b.ops.begin_cpu_access is None:
        return s, 0
    return b.ops.begin_cpu_access(s, tid, buf, dir)


def dma_buf_begin_cpu_access_wait(
    s: KState, tid: Tid, buf: BufId, dir: DmaDataDirection, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """dma_buf_begin_cpu_access_wait - the core's fence wait of dma_buf_begin_cpu_access.

    Waits interruptibly, without limit, for the resv fences of usage dma_resv_usage_rw(write),
    write meaning BIDIRECTIONAL or TO_DEVICE: a writer waits for KERNEL, WRITE and READ fences, a
    reader for KERNEL and WRITE. Blocked while one is unsignalled.

    Returns: 0 (a positive wait result); -ERESTARTSYS. Core-semantics §5.10, §10 #27.
    """
    usage = dma_resv_usage_rw(_cpu_write(dir))
    r = dma_resv_wait_timeout(
        s,
        tid,
        s.bufs[buf].resv,
        usage,
        True,
        MAX_SCHEDULE_TIMEOUT,
        signal_pending=signal_pending,
    )
    if isinstance(r, Blocked):
        return r
    s, ret = r
    return s, 0 if ret > 0 else ret


def dma_buf_begin_cpu_access(
    s: KState, tid: Tid, buf: BufId | None, dir: DmaDataDirection, *, signal_pending: bool = False
) -> tuple[KState, int] | Blocked:
    """dma_buf_begin_cpu_access - prepare the buffer for CPU access in direction ``dir``.

    Caller must not hold the resv (WARN #11). Calls ops.begin_cpu_access if present and, if that
    returned 0, waits for the implicit-sync fences (dma_buf_begin_cpu_access_wait). One-step
    form: Blocked *before* the exporter runs while a fence to wait for is unsignalled. If the
    exporter itself adds an unsignalled fence that the wait must cover (a migration), this form
    records WARN #27 naming the two-step form (_start + _wait) and returns 0.

    Returns: 0; -EINVAL (WARN: NULL); the exporter's error; -ERESTARTSYS.
    Core-semantics §5.10, §10 #11, #27.
    """
    if buf is not None and not s.bufs[buf].released and not signal_pending:
        probe = dma_buf_begin_cpu_access_wait(s, tid, buf, dir)
        if isinstance(probe, Blocked):
            return probe
    s, ret = dma_buf_begin_cpu_access_start(s, tid, buf, dir)
    if ret != 0 or buf is None:
        return s, ret
    r = dma_buf_begin_cpu_access_wait(s, tid, buf, dir, signal_pending=signal_pending)
    if not isinstance(r, Blocked):
        return r
    what = (
        "dma_buf_begin_cpu_access: ops.begin_cpu_access added an unsignalled fence; model it "
        "with dma_buf_begin_cpu_access_start + dma_buf_begin_cpu_access_wait"
    )
    return warn(s, 27, what), 0


def dma_buf_end_cpu_access(
    s: KState, tid: Tid, buf: BufId | None, dir: DmaDataDirection
) -> tuple[KState, int]:
    """dma_buf_end_cpu_access - end CPU access; calls ops.end_cpu_access if present.

    Caller must not hold the resv (WARN #11). NULL: the kernel WARNs and carries on into a NULL
    dereference; the model records the WARN and returns -EINVAL. Balance with begin is not
    tracked (§5.10).

    Returns: 0 or the exporter's error. Core-semantics §5.10.
    """
    if buf is None:
        return warn(s, 0, "dma_buf_end_cpu_access: NULL dmabuf"), -EINVAL
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"dma_buf_end_cpu_access on released buf{buf}", 6), -EINVAL
    s = _warn_if_held(s, tid, b.resv, 11, "dma_buf_end_cpu_access with resv held")
    if b.ops.end_cpu_access is None:
        return s, 0
    return b.ops.end_cpu_access(s, tid, buf, dir)


# --------------------------------------------------------------------------------------------
# §5.11 mmap.


def _mmap_common(
    s: KState, tid: Tid, buf: BufId, pgoff: int, npages: int, fn: str
) -> tuple[KState, int]:
    b = s.bufs[buf]
    assert b.ops.mmap is not None
    s = _warn_if_held(s, tid, b.resv, 9, f"{fn}: ops.mmap called with resv held")
    s, ret = b.ops.mmap(s, tid, buf, pgoff, npages)
    if ret == 0:  # the vma now holds a file reference (§10 #4)
        s = get_dma_buf(s, buf)
    return s, ret


def dma_buf_mmap(
    s: KState, tid: Tid, buf: BufId | None, pgoff: int, npages: int
) -> tuple[KState, int]:
    """dma_buf_mmap - redirect a driver's mmap of ``npages`` pages at ``pgoff`` to the buffer.

    Caller must not hold the resv (ops.mmap runs unlocked: WARN #9). On success the vma holds a
    reference to the dma-buf file (dropped by dma_buf_vma_close). Pages are counted as
    size >> PAGE_SHIFT, so a trailing partial page cannot be mapped.

    Returns: 0; -EINVAL (WARN: NULL; no ops.mmap; past the end); -EOVERFLOW (pgoff + npages
    wraps); -ENODEV (revoke-v1's core revoked state, [inference]); the exporter's error.
    Core-semantics §5.11, §10 #29.
    """
    if buf is None:
        return warn(s, 0, "dma_buf_mmap: NULL dmabuf"), -EINVAL
    b = s.bufs[buf]
    if b.released:
        return _use_after_free(s, f"dma_buf_mmap on released buf{buf}", 6), -EINVAL
    if b.ops.mmap is None:
        return s, -EINVAL
    if pgoff + npages > ULONG_MAX:
        return s, -EOVERFLOW
    if pgoff + npages > b.size >> PAGE_SHIFT:
        return s, -EINVAL
    if b.revoked:  # revoke-v1's core revoked state [inference, §7]
        return s, -ENODEV
    return _mmap_common(s, tid, buf, pgoff, npages, "dma_buf_mmap")


def dma_buf_mmap_internal(
    s: KState, tid: Tid, fd: Fd, pgoff: int, npages: int
) -> tuple[KState, int]:
    """dma_buf_mmap_internal - mmap(2) on a dma-buf descriptor (the file's mmap operation).

    Caller must not hold the resv (WARN #9). On success the vma holds a file reference.

    Returns: 0; -EBADF (no such descriptor, from the syscall layer); -EINVAL (not a dma-buf file,
    no ops.mmap, or ``pgoff + npages`` past size >> PAGE_SHIFT); -ENODEV (revoke-v1's core
    revoked state, [inference]); the exporter's error.
    Core-semantics §5.11, §10 #29.
    """
    entry = fd_lookup(s, fd)
    if entry is None:
        return s, -EBADF
    kind, buf = entry
    if kind != "dma_buf":
        return s, -EINVAL
    b = s.bufs[buf]
    if b.ops.mmap is None or pgoff + npages > b.size >> PAGE_SHIFT:
        return s, -EINVAL
    if b.revoked:  # revoke-v1's core revoked state [inference, §7]
        return s, -ENODEV
    return _mmap_common(s, tid, buf, pgoff, npages, "dma_buf_mmap_internal")


def dma_buf_vma_close(s: KState, tid: Tid, buf: BufId) -> KState:
    """dma_buf_vma_close - munmap of a vma mapped from the buffer drops its file reference.

    Not a dma-buf.c function (the mm core does the fput); it is how a mapping's reference ends
    (§10 #4). Caller must not hold the resv if this may be the last reference.
    """
    return dma_buf_put(s, tid, buf)


__all__ = [
    "DMA_BUF_NAME_LEN",
    "MAINLINE_POLICY",
    "O_ACCMODE",
    "O_CLOEXEC",
    "O_NONBLOCK",
    "O_RDONLY",
    "O_RDWR",
    "O_WRONLY",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "RLIMIT_NOFILE",
    "CorePolicy",
    "DmaBuf",
    "DmaBufAttachOps",
    "DmaBufAttachment",
    "DmaBufOps",
    "DmaDataDirection",
    "SgTable",
    "attachment_listed",
    "close_fd",
    "dma_buf_attach",
    "dma_buf_attach_revocable",
    "dma_buf_attachment_is_dynamic",
    "dma_buf_attachment_is_revoke",
    "dma_buf_begin_cpu_access",
    "dma_buf_begin_cpu_access_start",
    "dma_buf_begin_cpu_access_wait",
    "dma_buf_detach",
    "dma_buf_dynamic_attach",
    "dma_buf_dynamic_attach_finish",
    "dma_buf_dynamic_attach_start",
    "dma_buf_end_cpu_access",
    "dma_buf_export",
    "dma_buf_fd",
    "dma_buf_get",
    "dma_buf_invalidate_mappings",
    "dma_buf_invariant_violations",
    "dma_buf_is_dynamic",
    "dma_buf_map_attachment",
    "dma_buf_map_attachment_start",
    "dma_buf_map_attachment_unlocked",
    "dma_buf_map_attachment_wait",
    "dma_buf_mmap",
    "dma_buf_mmap_internal",
    "dma_buf_pin",
    "dma_buf_pin_on_map",
    "dma_buf_put",
    "dma_buf_revoke",
    "dma_buf_unmap_attachment",
    "dma_buf_unmap_attachment_unlocked",
    "dma_buf_unpin",
    "dma_buf_vma_close",
    "dma_buf_vmap",
    "dma_buf_vmap_unlocked",
    "dma_buf_vunmap",
    "dma_buf_vunmap_unlocked",
    "fd_lookup",
    "get_dma_buf",
    "live_mappings",
    "live_sgts",
    "owed_unmaps",
    "unsafe_unpinned_mapping",
]
