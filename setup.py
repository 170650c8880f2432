"""Only the C extension is declared here; everything else about the package is in pyproject.toml.

``bdr.engines.redis.rdb._digest`` computes the content digest of a Redis RDB file (see
``bdr/engines/redis/rdb/__init__.py``). ``pip install -e .`` builds it in place; without a
compiler bdr still works and digests with the pure-Python reference (much slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bdr.engines.redis.rdb._digest",
            sources=["bdr/engines/redis/rdb/_digest.c"],
            extra_compile_args=["-O3", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
)
