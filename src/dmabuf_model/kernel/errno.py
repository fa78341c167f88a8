"""Kernel errno values, returned as negative ints exactly as the kernel returns them.

A failing kernel call returns ``-errno.EXXX`` as a value, never raises (design.md "Faithful first").
Values and names come from Python's ``errno`` module; ``ERESTARTSYS`` is kernel-internal (512).
"""

from __future__ import annotations

import errno as _errno

EPERM = _errno.EPERM
ENOENT = _errno.ENOENT
EINTR = _errno.EINTR
EBADF = _errno.EBADF
EAGAIN = _errno.EAGAIN
ENOMEM = _errno.ENOMEM
EFAULT = _errno.EFAULT
EBUSY = _errno.EBUSY
ENODEV = _errno.ENODEV
EINVAL = _errno.EINVAL
EMFILE = _errno.EMFILE
ENOTTY = _errno.ENOTTY
ESPIPE = _errno.ESPIPE
EDEADLK = _errno.EDEADLK
ENODATA = _errno.ENODATA
ETIME = _errno.ETIME
EOVERFLOW = _errno.EOVERFLOW
EEXIST = _errno.EEXIST
EBADFD = _errno.EBADFD
EOPNOTSUPP = _errno.EOPNOTSUPP
EALREADY = _errno.EALREADY
ETIMEDOUT = _errno.ETIMEDOUT
ECANCELED = _errno.ECANCELED
ERESTARTSYS = 512  # kernel-internal, include/linux/errno.h
MAX_ERRNO = 4095

_NAMES: dict[int, str] = {ERESTARTSYS: "ERESTARTSYS"}
for _name in dir(_errno):
    if _name.startswith("E") and isinstance(getattr(_errno, _name), int):
        _NAMES.setdefault(getattr(_errno, _name), _name)
# Prefer the names kernel developers write.
_NAMES.update({EOPNOTSUPP: "EOPNOTSUPP", EDEADLK: "EDEADLK", EAGAIN: "EAGAIN"})


def errname(ret: int) -> str:
    """errname - the symbolic name of a negative errno ("-ENODEV"), or the number itself.

    Used by traces and reports so that a kernel developer reads the same names as in the source.
    """
    if ret < 0 and -ret in _NAMES:
        return "-" + _NAMES[-ret]
    return str(ret)


def errno_from_name(name: str) -> int:
    """errno_from_name - "ENODEV" or "-ENODEV" to the negative value (-19)."""
    key = name.lstrip("-")
    for value, candidate in _NAMES.items():
        if candidate == key:
            return -value
    raise KeyError(name)
