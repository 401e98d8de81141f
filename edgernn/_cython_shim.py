"""Stand-in for the ``cython`` module when edgernn runs as plain Python (see kernel.py).

Cython reads the decorators and annotations when it compiles; without it they do nothing."""


def _same(obj):
    return obj


def _directive(*_args, **_kwargs):
    return _same


class cython:  # noqa: N801 - mirrors the module's name
    compiled = False
    cclass = cfunc = ccall = final = inline = staticmethod(_same)
    boundscheck = wraparound = cdivision = exceptval = staticmethod(_directive)
    long = int
    short = int
    int = int
    bint = bool
    double = float

    @staticmethod
    def declare(kind, value=None, **_kwargs):
        return value

    @staticmethod
    def cast(kind, value):
        return kind(value)
