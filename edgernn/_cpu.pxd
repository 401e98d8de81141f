# C helpers the compiled kernel (kernel.py) cimports; plain Python never reads this file.
cdef extern from *:
    """
    /* a hint that a slab row is about to be read and written (no effect on the results) */
    static inline void edgernn_prefetch(const void *p) {
    #if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(p, 1, 3);
    #else
        (void)p;
    #endif
    }
    """
    void edgernn_prefetch(const void *p) nogil
