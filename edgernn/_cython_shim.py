"""Stand-in for the ``cython`` module when edgernn runs as plain Python (see kernel.py).

Cython reads the decorators and annotations when it compiles; without it they do nothing."""


def _same(obj):
    return obj


def _directive(*_args, **_kwargs):
    return _same


class _Double(float):
    """cython.double; ``cython.double[N]`` names a C array of N doubles (declare makes it a list)."""

    def __class_getitem__(cls, n):
        return ("array", n)


class cython:  # noqa: N801 - mirrors the module's name
    compiled = False
    cclass = cfunc = ccall = final = inline = staticmethod(_same)
    boundscheck = wraparound = cdivision = exceptval = staticmethod(_directive)
    long = int
    short = int
    int = int
    bint = bool
    double = _Double

    @staticmethod
    def declare(kind, value=None, **_kwargs):
        if isinstance(kind, tuple) and kind[0] == "array":  # cython.double[N]: a local C array
            return [0.0] * kind[1]
        return value

    @staticmethod
    def cast(kind, value):
        return kind(value)
