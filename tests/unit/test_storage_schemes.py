"""The registry of repository url schemes: a backend registers itself once, an unknown scheme is a usage error."""

from __future__ import annotations

import pytest

from bdr.errors import UsageError
from bdr.storage import open_storage
from bdr.storage.schemes import factory_for, register_scheme


def test_s3_is_loaded_on_first_use_and_a_second_backend_is_refused() -> None:
    from bdr.storage.s3 import open_s3

    assert factory_for("s3") is open_s3
    register_scheme("s3", open_s3)  # the same one again (a re-import) is fine
    with pytest.raises(RuntimeError, match="two storage backends for s3://"):
        register_scheme("s3", lambda location, **options: open_s3(location, **options))


def test_an_unknown_scheme_names_the_ones_that_work() -> None:
    assert factory_for("ftp") is None
    with pytest.raises(UsageError, match="unsupported repository url 'ftp://host/x': use a path or s3://"):
        open_storage("ftp://host/x")
