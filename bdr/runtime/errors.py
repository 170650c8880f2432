"""The runtime's errors: leaves of :mod:`bdr.errors`' families, each docstring its message.

They carry the exit code of their family (configuration 3, service 7) and say how to fix
what went wrong in the same line.
"""

from __future__ import annotations

from bdr.errors import ConfigError, ServiceError


class NoLaunch(ConfigError):
    """Redis {name} is not running and bdr does not know how to start it: {fix}"""


class Supervised(ServiceError):
    """{detail}; bdr stopped nothing"""


class StartFailed(ServiceError):
    """Redis {name} did not start ({how}): {detail}"""


class StopFailed(ServiceError):
    """Redis {name} did not stop ({how}): {detail}"""


class UnsafeLaunch(ServiceError):
    """refusing to start Redis {name} as `{how}`: {detail}"""


class CommandFailed(ServiceError):
    """`{command}` failed (exit code {code}): {output}"""


__all__ = ["CommandFailed", "NoLaunch", "StartFailed", "StopFailed", "Supervised", "UnsafeLaunch"]
