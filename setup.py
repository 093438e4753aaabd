"""Builds the Cython kernels; everything else is declared in pyproject.toml.

Every ``kernels/cython/<name>.pyx`` becomes ``fastnn._kernels.cython.<name>``.
Flags are safe on any x86-64; set FASTNN_NATIVE=1 to opt in to ``-march=native``.
"""
import glob
import importlib.util
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# -fno-math-errno lets loops that call sqrt vectorize; it changes no result (errno is never read).
compile_args = ["-O3", "-fno-math-errno"]
if os.environ.get("FASTNN_NATIVE") == "1":
    compile_args.append("-march=native")



def write_constants_pxi():
    """kernels/cython/_constants.pxi from kernels/constants.py (the one home of the shared constants);
    rewritten only when its text changes, so that an unchanged file does not recompile every module."""
    spec = importlib.util.spec_from_file_location("fastnn_constants", os.path.join("kernels", "constants.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = os.path.join("kernels", "cython", "_constants.pxi")
    text = module.cython_constants()
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)


write_constants_pxi()

extensions = [
    Extension(
        "fastnn._kernels.cython." + os.path.splitext(os.path.basename(path))[0],
        [path],
        include_dirs=[numpy.get_include(), os.path.join("kernels", "cython")],
        depends=sorted(glob.glob(os.path.join("kernels", "cython", "*.h"))),
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for path in sorted(glob.glob(os.path.join("kernels", "cython", "*.pyx")))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            # Safe because the Python layer checks shapes, dtypes and contiguity first.
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
