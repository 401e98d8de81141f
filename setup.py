"""Builds edgernn/kernel.py into a C extension with Cython (same source; see kernel.py).

The extension is optional: without a C compiler, or with EDGERNN_PURE_PYTHON=1, the package
installs as plain Python and runs kernel.py as it is (same numbers, slower at batch 1).
"""

import os

from setuptools import Extension, setup

ext_modules = []
if os.environ.get("EDGERNN_PURE_PYTHON") != "1":
    try:
        from Cython.Build import cythonize
    except ImportError:  # a build without Cython (pip installs it for the build from pyproject.toml)
        cythonize = None
    if cythonize is not None:
        ext_modules = cythonize(
            [Extension("edgernn.kernel", ["edgernn/kernel.py"], optional=True)],
            language_level=3, build_dir="build/cython", quiet=True,
        )

setup(ext_modules=ext_modules)
