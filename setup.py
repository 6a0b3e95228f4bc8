"""Build the optional C speedups; everything else is in pyproject.toml.

``optional=True``: without a C compiler the build prints a warning and aiomsg
installs as pure Python (same behaviour, slower LengthPrefixed). Set
``AIOMSG_PURE_PYTHON=1`` to skip the extension on purpose.
"""

import os
import platform

from setuptools import Extension, setup

wanted = platform.python_implementation() == "CPython" and not os.environ.get(
    "AIOMSG_PURE_PYTHON"
)
extensions = [Extension("aiomsg._speedups", ["aiomsg/_speedups.c"], optional=True)]
setup(ext_modules=extensions if wanted else [])
