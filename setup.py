"""Builds edgernn/kernel.py into a C extension with Cython (same source; see kernel.py), and puts the
shipped model bundles into the package.

The extension is optional: without a C compiler, or with EDGERNN_PURE_PYTHON=1, the package
installs as plain Python and runs kernel.py as it is (same numbers, slower at batch 1).

The bundles stay at the top of the repository (firmware_models/<name>/, where the trainer writes
them and the firmware examples point); build_py copies each into the built package as
edgernn/models/<name>/, with the example config, so a wheel finds them by name
(``--model univariate``) from any directory. The sdist carries them through MANIFEST.in.
"""

import os
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED_MODELS = ("univariate", "skab-pump")
EXAMPLE_CONFIG = HERE / "deploy" / "edgernn.example.yaml"


class build_py_with_models(build_py):
    """The usual build_py, then firmware_models/<name>/ -> <build>/edgernn/models/<name>/."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "edgernn" / "models"
        for name in SHIPPED_MODELS:
            source = HERE / "firmware_models" / name
            if not (source / "manifest.yaml").is_file():
                raise SystemExit(f"setup.py: shipped model missing: {source}/manifest.yaml")
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(source, target / name)
        if EXAMPLE_CONFIG.is_file():
            shutil.copy2(EXAMPLE_CONFIG, target / EXAMPLE_CONFIG.name)


# Linked against libm by name, so that exp / log / log10 bind to libm's current symbol versions: left
# to the interpreter's libm, the unversioned references bind to the oldest ones (glibc's SVID error
# wrappers around the same functions: the same numbers, an extra call each). Not on Windows.
_LIBM = [] if os.name == "nt" else ["m"]
ext_modules = []
if os.environ.get("EDGERNN_PURE_PYTHON") != "1":
    try:
        from Cython.Build import cythonize
    except ImportError:  # a build without Cython (pip installs it for the build from pyproject.toml)
        cythonize = None
    if cythonize is not None:
        ext_modules = cythonize(
            [Extension("edgernn.kernel", ["edgernn/kernel.py"], optional=True, libraries=_LIBM)],
            language_level=3, build_dir="build/cython", quiet=True,
        )
        for ext in ext_modules:  # cythonize drops optional=True: a failed compile must not fail the install
            ext.optional = True

setup(ext_modules=ext_modules, cmdclass={"build_py": build_py_with_models})
