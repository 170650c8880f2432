"""A repository in an S3 bucket (``s3://bucket/prefix``): the off-site copy of the 3-2-1 rule.

Objects are uploaded as they are produced, never staged in full in memory or on disk: a
sink cuts the stream into *parts* (``remote.part_size_mib``, 16 MiB by default) and sends
up to ``remote.concurrency`` (4) of them at once as parts of a multipart upload, each with
its sha256 (``x-amz-checksum-sha256``, which S3 checks on receipt); the writer waits while
that many are on their way, so an upload holds at most ``concurrency`` parts in memory, the
one being filled included (:mod:`bdr.storage.parallel`). Nothing is visible until :meth:`S3Sink.commit` completes the
upload with the parts in order; an abort or any error aborts it, so no orphaned parts are
left behind (and the bucket lifecycle's abort rule, see :mod:`bdr.storage.lifecycle`, discards
those of a killed process). An object smaller than one part is sent with a single PutObject.
Reads fetch ``concurrency`` ranges of a part's size at once and hand them out in order.

A network that drops for a moment is ridden out (:mod:`bdr.storage.retry`): botocore
retries each request (standard mode, ``max_attempts``), and bdr tries a failed part, a
PutObject, the completion of an upload or a GET again after pauses of 1, 2, 4 and 8 s
(each part and each range on its own). A range whose connection dropped resumes with a
ranged GET (pinned to the object's ETag) from the byte where it stopped. When the endpoint
stays away the error is :class:`~bdr.errors.ServiceUnavailable` (exit 7) and the upload
is aborted (the parts still on their way stopped first), or, when even
that cannot reach S3, left to the next run's sweep (:meth:`S3Storage.abort_uploads`) and
the lifecycle rule. Locks use a conditional put (``If-None-Match: *``), which S3 has
honoured since 2024; on a store that answers ``NotImplemented`` it falls back to
check-then-put, which two writers starting in the same instant can both pass.

The credentials need ``s3:ListBucket``, ``s3:GetObject``, ``s3:PutObject``,
``s3:PutObjectTagging`` (objects are tagged for the lifecycle), ``s3:DeleteObject``,
``s3:ListBucketMultipartUploads``, ``s3:AbortMultipartUpload``, ``s3:RestoreObject`` and,
for ``bdr s3 lifecycle``, ``s3:GetLifecycleConfiguration`` / ``s3:PutLifecycleConfiguration``
(plus ``kms:GenerateDataKey`` and ``kms:Decrypt`` with ``sse: aws:kms``).

A part and a PutObject carry their sha256 in a signed header that S3 checks the body
against, so their body is not hashed again for the signature (``UNSIGNED-PAYLOAD``, what
botocore does by itself over https; over plain http it would hash every byte a third time);
every other request keeps a signed body (:meth:`S3Storage._make_clients`).

Credentials come only from the AWS chain (``AWS_PROFILE`` or ``remote.profile``,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, an instance or task role), never from
argv or bdr.yaml, and botocore's request logging (which would carry session tokens) is
kept off even under ``--debug``. Every botocore error is translated here into a typed
:mod:`bdr.errors` error: wrong credentials, a missing bucket, an unreachable endpoint and
an archived (GLACIER) object each get one line saying what to do.

Options (``open_storage(url, settings=config.remote)``, or keywords overriding them)::

    endpoint_url   S3-compatible endpoint (MinIO, moto); $AWS_ENDPOINT_URL_S3 works too
    region         bucket region
    profile        ~/.aws/config profile
    sse            AES256 | aws:kms (with kms_key_id)
    storage_class  class of data objects at upload (STANDARD_IA ...); manifests stay STANDARD
    part_size_mib  multipart part size, and the size of a download's ranges (5..5120)
    concurrency    parts sent, or ranges fetched, at once per object (1..32)
    max_attempts   attempts per request (standard retry mode)

and, not in bdr.yaml (tests, tools): ``connect_timeout`` and ``read_timeout`` (seconds per
request), ``transfer_pauses`` (the pauses between bdr's tries of a transfer step).
"""

from __future__ import annotations

import base64
import builtins
import collections
import contextlib
import dataclasses
import functools
import hashlib
import io
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast
from urllib.parse import quote, urlparse

import boto3
import botocore.exceptions as boto_errors
from botocore.config import Config as BotoConfig

from bdr import __version__
from bdr.config import RemoteSettings
from bdr.errors import (
    BackupNotFound,
    BdrError,
    ConfigError,
    CorruptArchive,
    ObjectArchived,
    PlaintextOffsite,
    RemoteAccessDenied,
    RemoteBucketNotFound,
    ServiceError,
    ServiceUnavailable,
    StorageError,
    UsageError,
)
from bdr.storage.base import WrittenObject, failed_again, write_all
from bdr.storage.lifecycle import ARCHIVE_CLASSES, TIER_TAG, Tier, object_tier, set_of
from bdr.storage.parallel import PartPipeline, RangeWindow, Stopped
from bdr.storage.retry import (
    ABORT_PAUSES,
    TRANSFER_PAUSES,
    GaveUp,
    Retryable,
    is_network,
    network_reason,
    retrying,
)
from bdr.storage.schemes import register_scheme

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from bdr.storage.base import ObjectCipher

logger = logging.getLogger(__name__)

# botocore logs request headers (session tokens, signatures) at DEBUG: keep it out of --debug output.
for _name in ("botocore", "boto3", "s3transfer", "urllib3.connectionpool"):
    logging.getLogger(_name).setLevel(logging.INFO)

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
"""S3's smallest part (except the last one)."""
MAX_PARTS = 10_000
DELETE_BATCH = 1000
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
READ_CHUNK = MIB
"""How much of a range's body is read at a time: what a break can cost to fetch again."""
SPARE_CONNECTIONS = 4
"""Connections of the pool beyond ``remote.concurrency`` (listing, HEAD, the upload's own calls)."""
TRANSPORT_OPTIONS = frozenset({"connect_timeout", "read_timeout", "transfer_pauses"})
"""Keyword options of :func:`open_s3` that are not bdr.yaml settings."""

T = TypeVar("T")

DENIED_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "InvalidClientTokenId", "AllAccessDisabled", "AccountProblem", "403", "Forbidden",
})
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
TAKEN_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _error_code(exc: boto_errors.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def unless_stopped(action: Callable[[], T], stopped: threading.Event, what: str) -> Callable[[], T]:
    """``action``, refused once ``stopped`` is set (a part or range whose transfer was given up)."""
    def attempt() -> T:
        if stopped.is_set():
            raise Stopped(f"{what}: stopped")
        return action()
    return attempt


def require_encryption(settings: RemoteSettings, cipher: ObjectCipher | None, *, allow_plaintext: bool = False,
                       url: str | None = None) -> None:
    """Refuse an off-site backup without a cipher unless plaintext is allowed.

    ``allow_plaintext`` is the ``--allow-plaintext`` flag; ``remote.allow_plaintext: true`` in
    bdr.yaml allows it too. Raises :class:`~bdr.errors.PlaintextOffsite`.
    """
    where = url or settings.url or "the off-site repository"
    if cipher is None and not (allow_plaintext or settings.allow_plaintext):
        raise PlaintextOffsite(url=where)
    if cipher is None:
        logger.warning("sending an unencrypted backup off-site to %s (plaintext allowed)", where)


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (``bucket``, ``some/prefix``)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise UsageError(detail=f"invalid S3 url {url!r}: use s3://bucket/prefix")
    if parsed.query or parsed.fragment or "@" in parsed.netloc:
        raise UsageError(detail=f"invalid S3 url {url!r}: no credentials, query or fragment; use s3://bucket/prefix")
    prefix = parsed.path.strip("/")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise UsageError(detail=f"invalid S3 url {url!r}: '.' and '..' are not allowed in the prefix")
    return parsed.netloc, prefix


class S3Storage:
    """Objects under a prefix of an S3 bucket."""

    location = "s3"

    def __init__(self, bucket: str, prefix: str = "", settings: RemoteSettings | None = None, *,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT,
                 transfer_pauses: Sequence[float] = TRANSFER_PAUSES) -> None:
        self.settings = settings or RemoteSettings()
        self.settings.validate("remote settings")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.transfer_pauses = tuple(transfer_pauses)
        self.abort_pauses = ABORT_PAUSES if self.transfer_pauses else ()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.part_size = self.settings.part_size_mib * MIB
        self.client, self.data_client = self._make_clients()
        self.endpoint = str(self.client.meta.endpoint_url)
        self._conditional_put = True

    def _make_clients(self) -> tuple[S3Client, S3Client]:
        """The client of every request, and the one of requests whose body carries its own signed sha256.

        A part (and a PutObject) is sent with its sha256 in ``x-amz-checksum-sha256``, a signed
        header S3 checks the body against: hashing the body again for the signature, as botocore
        does over plain http, adds nothing but a third sha256 pass over every byte uploaded.
        ``data_client`` signs the header and not the body (what botocore itself does over https
        when a checksum is sent); every other request (the completion's part list included) keeps
        a signed body."""
        settings = self.settings
        try:
            session = boto3.session.Session(profile_name=settings.profile, region_name=settings.region)
        except boto_errors.ProfileNotFound as exc:
            name = settings.profile or os.environ.get("AWS_PROFILE")
            raise ConfigError(path="remote.profile" if settings.profile else "$AWS_PROFILE",
                              detail=f"AWS profile {name!r} not found in ~/.aws/config or ~/.aws/credentials; "
                              "fix the name or unset it to use the environment's credentials") from exc
        s3: Any = {"addressing_style": "path"} if settings.endpoint_url else {}  # botocore types it as a TypedDict
        config = BotoConfig(
            retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},  # the first one included
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            tcp_keepalive=True,
            max_pool_connections=settings.concurrency + SPARE_CONNECTIONS,
            user_agent_extra=f"bdr/{__version__}",
            s3=s3 or None,
        )
        unsigned: Any = {**s3, "payload_signing_enabled": False}
        data_config = config.merge(BotoConfig(s3=unsigned))
        return (session.client("s3", endpoint_url=settings.endpoint_url, config=config),
                session.client("s3", endpoint_url=settings.endpoint_url, config=data_config))

    # --- keys and errors ---------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        parts = key.split("/")
        if key.startswith("/") or any(p in (".", "..") for p in parts):
            raise StorageError(detail=f"invalid object key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def translate(self, exc: Exception, operation: str, key: str | None = None) -> BdrError:
        """The bdr error for a botocore failure of ``operation`` on ``key`` (a :class:`GaveUp` says how
        often it was tried)."""
        tried = ""
        if isinstance(exc, GaveUp):
            tried = f", gave up after {exc.tries} tries in {exc.seconds:.0f} s"
            exc = exc.cause
        where = f"{self.url}/{key}" if key else self.url
        if is_network(exc):
            during = f"{operation} of {key}" if key else operation
            return ServiceUnavailable(service="S3", address=self.endpoint,
                                      detail=f"{network_reason(exc)} ({during}{tried})")
        if isinstance(exc, boto_errors.ClientError):
            code = _error_code(exc)
            message = str(exc.response.get("Error", {}).get("Message", "")) or code
            if code in DENIED_CODES:
                return RemoteAccessDenied(bucket=self.bucket, code=code)
            if code == "NoSuchBucket":
                return RemoteBucketNotFound(bucket=self.bucket, endpoint=self.endpoint)
            if code in MISSING_KEY_CODES and key is not None:
                return BackupNotFound(ref=key, repo=self.url)
            if code == "InvalidObjectState" and key is not None:
                storage_class = str(exc.response.get("Error", {}).get("StorageClass", "") or "archive")
                return ObjectArchived(key=self._key(key), storage_class=storage_class, ref=set_of(key),
                                      url=self.url, bucket=self.bucket)
            return ServiceError(detail=f"S3 {operation} of {where} failed: {code}: {message}{tried}")
        if isinstance(exc, (boto_errors.NoCredentialsError, boto_errors.PartialCredentialsError,
                            boto_errors.CredentialRetrievalError)):
            return RemoteAccessDenied(bucket=self.bucket, code=f"no usable credentials: {exc}")
        if isinstance(exc, boto_errors.FlexibleChecksumError):
            return CorruptArchive(name=where, detail="S3 returned bytes that do not match its stored checksum")
        if isinstance(exc, BdrError):
            return exc
        return ServiceError(detail=f"S3 {operation} of {where} failed: {type(exc).__name__}: {exc}")

    def transfer(self, action: Callable[[], T], operation: str, key: str,
                 stopped: threading.Event | None = None) -> T:
        """Run one transfer step, tried again while S3 is out of reach; failures translated.

        ``stopped``: the event of the pipeline or window the step belongs to; once it is set the
        step is not tried again (it raises :class:`~bdr.storage.parallel.Stopped`, untranslated)."""
        what = f"S3 {operation} of {self.url}/{key}"
        try:
            if stopped is None:
                return retrying(action, what, self.transfer_pauses)
            return retrying(unless_stopped(action, stopped, what), what, self.transfer_pauses, sleep=stopped.wait)
        except Stopped:
            raise
        except Exception as exc:
            raise self.translate(exc, operation, key) from exc

    def _put_args(self, key: str) -> dict[str, Any]:
        """Tag, storage class and server-side encryption of a new object."""
        args: dict[str, Any] = {}
        tier = object_tier(key)
        if tier is not None:
            args["Tagging"] = f"{TIER_TAG}={quote(str(tier))}"
        if tier is Tier.DATA and self.settings.storage_class:
            args["StorageClass"] = self.settings.storage_class
        if self.settings.sse:
            args["ServerSideEncryption"] = self.settings.sse
            if self.settings.kms_key_id:
                args["SSEKMSKeyId"] = self.settings.kms_key_id
        return args

    # --- the Storage protocol ----------------------------------------------------------------------

    def open_write(self, key: str) -> S3Sink:
        return S3Sink(self, key)

    def open_read(self, key: str) -> BinaryIO:
        return cast(BinaryIO, S3ObjectStream(self, key))

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    def put_bytes(self, key: str, data: bytes) -> WrittenObject:
        return write_all(self.open_write(key), data)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        full = self._key(key)
        args = self._put_args(key)
        if self._conditional_put:
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*",
                                       ChecksumSHA256=_b64(hashlib.sha256(data).digest()), **args)
                return True
            except boto_errors.ClientError as exc:
                code = _error_code(exc)
                if code in TAKEN_CODES:
                    return self._written_by_us(key, data)
                if code not in ("NotImplemented", "501"):
                    raise self.translate(exc, "conditional put", key) from exc
                logger.warning("%s does not support conditional writes; locking with check-then-put", self.endpoint)
                self._conditional_put = False
            except Exception as exc:
                raise self.translate(exc, "conditional put", key) from exc
        if self.exists(key):
            return False
        self.put_bytes(key, data)
        return True

    def _written_by_us(self, key: str, data: bytes) -> bool:
        """After a refused conditional put: is the object there our own (a retry whose first try landed)?"""
        try:
            return self.read_bytes(key) == data
        except BackupNotFound:
            return False

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except boto_errors.ClientError as exc:
            if _error_code(exc) in MISSING_KEY_CODES:
                return False
            raise self.translate(exc, "HEAD", key) from exc
        except Exception as exc:
            raise self.translate(exc, "HEAD", key) from exc
        return True

    def _head(self, key: str) -> dict[str, Any]:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except Exception as exc:
            raise self.translate(exc, "HEAD", key) from exc

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, **kwargs):
                yield dict(page)
        except Exception as exc:
            raise self.translate(exc, "LIST") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        if not prefix:
            full = f"{self.prefix}/" if self.prefix else ""
            for page in self._pages(Prefix=full):
                for item in page.get("Contents", ()):
                    yield self._relative(item["Key"])
            return
        full = self._key(prefix.rstrip("/"))
        for page in self._pages(Prefix=full):
            for item in page.get("Contents", ()):
                name = item["Key"]
                if name == full or name.startswith(full + "/"):
                    yield self._relative(name)

    def children(self, prefix: str = "") -> builtins.list[str]:
        base = self._key(prefix.rstrip("/")) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        names: set[str] = set()
        for page in self._pages(Prefix=base, Delimiter="/"):
            names.update(p["Prefix"][len(base):].rstrip("/") for p in page.get("CommonPrefixes", ()))
            names.update(item["Key"][len(base):] for item in page.get("Contents", ()))
        names.discard("")
        return sorted(names)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self.translate(exc, "DELETE", key) from exc

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix`` (1000 per request) and abort its pending uploads."""
        batch: builtins.list[str] = []
        for key in self.list(prefix):
            batch.append(self._key(key))
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch, prefix)
                batch = []
        if batch:
            self._delete_batch(batch, prefix)
        self.abort_uploads(prefix)

    def _delete_batch(self, keys: builtins.list[str], prefix: str) -> None:
        try:
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except Exception as exc:
            raise self.translate(exc, "DELETE", prefix) from exc
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise ServiceError(detail=f"S3 could not delete {len(errors)} object(s) under {self.url}/{prefix}, "
                               f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message', '')}")

    def _uploads(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        """The multipart uploads in progress whose key is ``prefix`` or under ``prefix/`` (all: ``""``)."""
        if prefix:
            full = self._key(prefix.rstrip("/"))
            wanted: Callable[[str], bool] = lambda k: k == full or k.startswith(full + "/")  # noqa: E731
        else:
            full = f"{self.prefix}/" if self.prefix else ""
            wanted = lambda k: k.startswith(full)  # noqa: E731
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        while True:
            try:
                page = self.client.list_multipart_uploads(**args)
            except Exception as exc:
                raise self.translate(exc, "ListMultipartUploads", prefix or None) from exc
            for upload in page.get("Uploads", ()):
                if wanted(str(upload["Key"])):
                    yield dict(upload)
            if not page.get("IsTruncated"):
                return
            args.update(KeyMarker=page.get("NextKeyMarker", ""), UploadIdMarker=page.get("NextUploadIdMarker", ""))

    def abort_uploads(self, prefix: str = "") -> int:
        """Abort the multipart uploads in progress at or under ``prefix`` (left by a killed run); how many.

        ``prefix`` is a set (``redis/<set-id>``), a key, or ``""`` for the whole repository.
        """
        aborted = 0
        for upload in builtins.list(self._uploads(prefix)):
            key, upload_id = str(upload["Key"]), str(upload["UploadId"])
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except boto_errors.ClientError as exc:
                if _error_code(exc) != "NoSuchUpload":  # completed or aborted meanwhile
                    raise self.translate(exc, "AbortMultipartUpload", self._relative(key)) from exc
                continue
            except Exception as exc:
                raise self.translate(exc, "AbortMultipartUpload", self._relative(key)) from exc
            aborted += 1
        if aborted:
            logger.warning("aborted %d pending multipart upload(s) under %s/%s", aborted, self.url, prefix)
        return aborted

    def stale_uploads(self, older_than_seconds: float = 0.0) -> builtins.list[str]:
        """Keys (relative to the repository) of multipart uploads started more than ``older_than_seconds``
        ago and neither completed nor aborted."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        keys = set()
        for upload in self._uploads(""):
            initiated = upload.get("Initiated")
            if isinstance(initiated, datetime) and initiated.tzinfo is None:
                initiated = initiated.replace(tzinfo=UTC)
            if not isinstance(initiated, datetime) or initiated <= cutoff:
                keys.add(self._relative(str(upload["Key"])))
        return sorted(keys)

    def free_space(self) -> int | None:
        return None

    # --- S3 only: lifecycle and archive tiers --------------------------------------------------------

    def lifecycle_rules(self) -> builtins.list[dict[str, Any]]:
        """The bucket's lifecycle rules (all of them, not only bdr's); empty when it has none."""
        try:
            response = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except boto_errors.ClientError as exc:
            if _error_code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise self.translate(exc, "GetBucketLifecycleConfiguration") from exc
        except Exception as exc:
            raise self.translate(exc, "GetBucketLifecycleConfiguration") from exc
        return [dict(rule) for rule in response.get("Rules", [])]

    def put_lifecycle_rules(self, rules: builtins.list[dict[str, Any]]) -> None:
        try:
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}  # type: ignore[typeddict-item]
            )
        except Exception as exc:
            raise self.translate(exc, "PutBucketLifecycleConfiguration") from exc

    def archive_state(self, key: str) -> tuple[str, str | None]:
        """(storage class, ``x-amz-restore`` header or None) of an object."""
        head = self._head(key)
        return str(head.get("StorageClass") or "STANDARD"), head.get("Restore")

    def request_restore(self, key: str, days: int = 7, tier: str = "Standard") -> None:
        """Ask S3 to make a temporary readable copy of an archived object for ``days``."""
        try:
            self.client.restore_object(
                Bucket=self.bucket, Key=self._key(key),
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},  # type: ignore[typeddict-item]
            )
        except boto_errors.ClientError as exc:
            if _error_code(exc) == "RestoreAlreadyInProgress":
                return
            raise self.translate(exc, "RestoreObject", key) from exc
        except Exception as exc:
            raise self.translate(exc, "RestoreObject", key) from exc


class S3Sink:
    """One object on its way up: cut into parts sent several at once, invisible until :meth:`commit`.

    :meth:`write` fills one part (hashing the whole object in order as the bytes come) and
    hands each full one, numbered in order, to a :class:`~bdr.storage.parallel.PartPipeline`:
    ``remote.concurrency`` threads hash and send the parts, each with its own sha256, each
    retried on its own. A part takes its room in the pipeline before its first byte and a
    full pipeline blocks the writer, so the sink holds at most ``concurrency`` parts (the one
    being filled included). :meth:`commit` sends the last part, waits for the others and
    completes the upload with the parts in order, however they finished.

    Every S3 call is a transfer step (tried again while S3 is out of reach); a step that
    still fails (on the writer's thread or on a part's) stops the parts in progress, aborts
    the upload and leaves the sink broken (see :mod:`bdr.storage.base`): the writer gets the
    error at its next ``write`` or at ``commit``, and again at every later one.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        self._storage = storage
        self._key = key
        self._full = storage._key(key)
        self._args = storage._put_args(key)
        self._part_size = storage.part_size
        self._concurrency = storage.settings.concurrency
        self._buffer = bytearray()
        self._filled = 0
        """How much of ``_buffer`` holds the part being filled (a reused buffer is a whole part long)."""
        self._digest = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._pipeline: PartPipeline[tuple[dict[str, Any], str]] | None = None
        self._submitted = 0
        self._parts: list[dict[str, Any]] = []
        self._part_digests: list[str] = []
        self._closed = False
        self._failure: BaseException | None = None
        self._create_retried = False

    @property
    def _where(self) -> str:
        return f"{self._storage.url}/{self._key}"

    @property
    def pipeline(self) -> PartPipeline[tuple[dict[str, Any], str]] | None:
        """The parts on their way (None until the first part is full): its ``peak`` and ``finished`` tell how."""
        return self._pipeline

    def _check_open(self, what: str) -> None:
        if self._failure is not None:
            raise failed_again(self._failure, self._where)
        if self._closed:
            raise StorageError(detail=f"{what} of {self._where} after it was committed or aborted")

    def write(self, data: bytes) -> int:
        self._check_open("write")
        if self._pipeline is not None and self._pipeline.failure is not None:
            self._guarded(self._pipeline.check)  # a part failed meanwhile: say so now
        view = memoryview(data)
        while view:
            if not self._filled and self._pipeline is not None:
                reused = self._guarded(self._pipeline.reserve)  # room for the part this byte starts: may wait
                if reused is not None:
                    self._buffer = reused
            taken = view[:self._part_size - self._filled]
            view = view[len(taken):]
            end = self._filled + len(taken)
            self._buffer[self._filled:end] = taken  # grows a new buffer, overwrites a reused one
            self._filled = end
            if end == self._part_size:
                part, self._buffer, self._filled = self._buffer, bytearray(), 0  # a sender holds it now
                self._guarded(self._submit, part)
        self._digest.update(data)
        self._size += len(data)
        return len(data)

    def _guarded(self, action: Callable[..., Any], *args: Any) -> Any:
        """Run a step; on failure abort the upload, break the sink and raise the (translated) error."""
        try:
            return action(*args)
        except BaseException as exc:
            error = self._storage.translate(exc, "upload", self._key) if isinstance(exc, Exception) else exc
            self._failure = error
            self.abort()
            if error is exc:
                raise
            raise error from exc

    def _call(self, operation: str, call: Callable[[], T], stopped: threading.Event | None = None) -> T:
        """One S3 request of this upload, tried again while S3 is out of reach (untranslated: see _guarded).

        ``stopped``: the pipeline's event, for a part's request (no more tries once it is set)."""
        what = f"S3 {operation} of {self._where}"
        if stopped is None:
            return retrying(call, what, self._storage.transfer_pauses)
        return retrying(unless_stopped(call, stopped, what), what, self._storage.transfer_pauses, sleep=stopped.wait)

    def _create(self) -> str:
        client, bucket = self._storage.client, self._storage.bucket
        tries = 0

        def create() -> Any:
            nonlocal tries
            tries += 1
            return client.create_multipart_upload(Bucket=bucket, Key=self._full, ChecksumAlgorithm="SHA256",
                                                  **self._args)

        response = self._call("CreateMultipartUpload", create)
        # a retried create may have started an upload whose answer was lost: clean those up at the end
        self._create_retried = tries > 1 or bool(response.get("ResponseMetadata", {}).get("RetryAttempts"))
        logger.debug("multipart upload of %s started", self._full)
        return str(response["UploadId"])

    def _submit(self, part: bytearray) -> None:
        """Hand the next part to the senders (starting the upload with the first); blocks while they are busy."""
        if self._upload_id is None:
            self._upload_id = self._create()
        number = self._submitted + 1
        if number > MAX_PARTS:
            raise StorageError(detail=f"{self._key} needs more than {MAX_PARTS} parts; raise remote.part_size_mib")
        if self._pipeline is None:
            self._pipeline = PartPipeline(self._send, self._concurrency, self._part_size,
                                          name=f"bdr-upload-{self._full}")
        self._pipeline.submit(number, part)
        self._submitted = number

    def _send(self, number: int, part: bytearray) -> tuple[dict[str, Any], str]:
        """Send part ``number`` with its sha256 (on a pipeline thread); what completing the upload needs of it."""
        assert self._pipeline is not None and self._upload_id is not None
        upload_id, stopped = self._upload_id, self._pipeline.stopped
        digest = hashlib.sha256(part).digest()
        checksum = _b64(digest)
        client, bucket = self._storage.data_client, self._storage.bucket
        response = self._call(f"UploadPart {number}", lambda: client.upload_part(
            Bucket=bucket, Key=self._full, UploadId=upload_id, PartNumber=number, Body=cast(bytes, part),
            ChecksumSHA256=checksum), stopped)
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}, digest.hex()

    def _expected_etag(self) -> str | None:
        """The ETag S3 gives the completed upload (md5 of the parts' md5s, dash, number of parts), from
        the parts' own ETags; None when those are not md5s (SSE-KMS, SSE-C)."""
        try:
            md5s = b"".join(bytes.fromhex(str(p["ETag"]).strip('"')) for p in self._parts)
        except ValueError:
            return None
        if len(md5s) != 16 * len(self._parts):
            return None
        return f'"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(self._parts)}"'

    def _last_part(self) -> bytearray:
        """The part being filled, cut to what it holds; the sink holds none after."""
        part, filled = self._buffer, self._filled
        self._buffer, self._filled = bytearray(), 0
        del part[filled:]
        return part

    def _complete(self) -> None:
        if self._filled:
            self._submit(self._last_part())
        assert self._pipeline is not None
        sent = self._pipeline.results()  # in part order, however they finished
        self._parts = [part for part, _ in sent]
        self._part_digests = [digest for _, digest in sent]
        client, bucket = self._storage.client, self._storage.bucket

        def complete() -> None:
            try:
                client.complete_multipart_upload(
                    Bucket=bucket, Key=self._full, UploadId=str(self._upload_id),
                    MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
                )
            except boto_errors.ClientError as exc:
                # a completion whose answer was lost, tried again: the upload is gone, the object there
                if _error_code(exc) != "NoSuchUpload" or not self._landed():
                    raise

        self._call("CompleteMultipartUpload", complete)

    def _landed(self) -> bool:
        """Whether the object in the bucket is exactly this upload (same size and multipart ETag)."""
        try:
            head = self._storage.client.head_object(Bucket=self._storage.bucket, Key=self._full)
        except boto_errors.ClientError:
            return False
        if int(head.get("ContentLength", -1)) != self._size:
            return False
        expected = self._expected_etag()
        return expected is None or head.get("ETag") == expected

    def _put(self) -> None:
        body = self._last_part()
        checksum = _b64(hashlib.sha256(body).digest())
        client, bucket = self._storage.data_client, self._storage.bucket
        self._call("PutObject", lambda: client.put_object(Bucket=bucket, Key=self._full, Body=cast(bytes, body),
                                                          ChecksumSHA256=checksum, **self._args))

    def commit(self) -> WrittenObject:
        self._check_open("commit")
        if self._upload_id is None:
            self._guarded(self._put)
            self._closed = True
            return WrittenObject(key=self._key, size=self._size, sha256=self._digest.hexdigest())
        self._guarded(self._complete)
        self._closed = True
        self._upload_id = None
        logger.debug("multipart upload of %s completed (%d parts)", self._full, len(self._parts))
        if self._create_retried:
            self._discard_strays()
        return WrittenObject(key=self._key, size=self._size, sha256=self._digest.hexdigest(),
                             parts=tuple(self._part_digests), part_size=self._part_size)

    def _discard_strays(self) -> None:
        """Abort uploads of this exact key other than ours (a retried create's lost twin); best effort."""
        try:
            self._storage.abort_uploads(self._key)
        except BdrError as exc:
            logger.warning("could not look for stray uploads of %s (%s); the lifecycle rule discards them",
                           self._full, exc)

    def abort(self) -> None:
        """Discard the object: nothing of it stays in the bucket (idempotent; never raises).

        The parts not yet sent are dropped and those being sent are waited for (they stop
        retrying), so that no part lands after the upload is aborted."""
        self._closed = True
        self._buffer, self._filled = bytearray(), 0
        if self._pipeline is not None:
            self._pipeline.stop()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        client, bucket = self._storage.client, self._storage.bucket
        try:
            retrying(lambda: client.abort_multipart_upload(Bucket=bucket, Key=self._full, UploadId=upload_id),
                     f"S3 AbortMultipartUpload of {self._where}", self._storage.abort_pauses)
            logger.debug("multipart upload of %s aborted", self._full)
        except Exception as exc:
            logger.warning("could not abort the upload of %s (%s); the next backup's sweep or the bucket's "
                           "lifecycle rule will discard its parts", self._full,
                           self._storage.translate(exc, "abort", self._key))
            return
        if self._create_retried:
            self._discard_strays()


class S3ObjectStream(io.BufferedIOBase):
    """The bytes of one object, fetched by ranges several at once and read in order.

    The object is read as consecutive ranges of ``remote.part_size_mib`` (a
    :class:`~bdr.storage.parallel.RangeWindow`): the first GET (on the reader's thread, so a
    missing or archived object fails at once) says how long the object is and pins its ETag;
    up to ``remote.concurrency`` ranges are then fetched ahead by pool threads and handed to
    the reader in order, a range's chunks let go as they are read. Memory: ``concurrency``
    ranges. A read of whole chunks (1 MiB, what the repository asks for) is handed the
    chunk as it came off the connection, without a copy.

    Each range is a transfer step (tried again while S3 is out of reach); a range whose body
    breaks mid-way is opened again from its next byte with a ranged GET pinned to the ETag,
    so only the missing bytes of that range travel again, and a replaced object is an error
    rather than a splice of two. Breaks of one range with no byte in between are bounded by
    the transfer pauses; bytes arriving reset the count. The whole object's sha256 is the
    reader's to check (the repository's ``CheckedReader`` compares it with the manifest).
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__()
        self._storage = storage
        self._key = key
        self._range_size = storage.part_size
        self._etag: str | None = None
        self._length = 0
        self._chunks: collections.deque[bytes] = collections.deque()
        self._offset = 0
        """How much of ``_chunks[0]`` was read already."""
        self._window: RangeWindow[collections.deque[bytes]] | None = None
        self.resumed: list[tuple[int, int]] = []
        """(range index, byte offset in the object) of every resumption after a break, in order."""
        self._first: Any = self._storage.transfer(self._get_first, "GET", key)
        count = -(-self._length // self._range_size)
        self._window = RangeWindow(count, self._fetch, storage.settings.concurrency,
                                   name=f"bdr-download-{storage._key(key)}")

    @property
    def where(self) -> str:
        return f"{self._storage.url}/{self._key}"

    @property
    def length(self) -> int:
        """The object's size (from the first GET)."""
        return self._length

    @property
    def window(self) -> RangeWindow[collections.deque[bytes]] | None:
        """The ranges on their way (its ``peak`` tells how many were at once)."""
        return self._window

    def _get_first(self) -> Any:
        """GET the first range: the object's length and ETag, and the first range's body (None when empty)."""
        full = self._storage._key(self._key)
        client, bucket = self._storage.client, self._storage.bucket
        try:
            response = client.get_object(Bucket=bucket, Key=full, Range=f"bytes=0-{self._range_size - 1}")
        except boto_errors.ClientError as exc:
            if _error_code(exc) != "InvalidRange":
                raise
            response = client.get_object(Bucket=bucket, Key=full)  # an empty object has no byte 0
        self._etag = response.get("ETag")
        length = int(response.get("ContentLength", 0) or 0)
        content_range = str(response.get("ContentRange") or "")
        if content_range:
            length = int(content_range.rsplit("/", 1)[1])
        elif length > self._range_size:
            response["Body"].close()
            raise ServiceError(detail=f"S3 GET of {self.where}: the endpoint {self._storage.endpoint} ignored the "
                                      "Range header (bdr reads objects by ranges); use an S3-compatible store that "
                                      "supports ranged GETs")
        self._length = length
        if not length:
            response["Body"].close()
            return None
        return response["Body"]

    def _get_range(self, start: int, end: int) -> Any:
        """A ranged GET of bytes ``start``..``end`` (inclusive), pinned to the ETag of the first."""
        args: dict[str, Any] = {"Bucket": self._storage.bucket, "Key": self._storage._key(self._key),
                                "Range": f"bytes={start}-{end}"}
        if self._etag is not None:
            args["IfMatch"] = self._etag
        try:
            response = self._storage.client.get_object(**args)
        except boto_errors.ClientError as exc:
            if _error_code(exc) in TAKEN_CODES:
                raise CorruptArchive(name=self.where, detail="the object was replaced while it was being read") from exc
            raise
        return response["Body"]

    def _fetch(self, index: int) -> collections.deque[bytes]:
        """The bytes of range ``index`` in chunks, resumed from the next byte after each break (on a window thread)."""
        assert self._window is not None
        stopped = self._window.stopped
        start = index * self._range_size
        end = min(start + self._range_size, self._length)
        chunks: collections.deque[bytes] = collections.deque()
        got = 0
        breaks = 0
        body: Any = None
        if index == 0:
            body, self._first = self._first, None
        try:
            while start + got < end:
                if stopped.is_set():
                    raise Stopped(f"GET of {self.where}: the read was closed")
                if body is None:
                    body = self._storage.transfer(functools.partial(self._get_range, start + got, end - 1), "GET",
                                                  self._key, stopped)
                try:
                    chunk = body.read(min(READ_CHUNK, end - start - got))  # botocore checks the length at the end
                except Exception as exc:
                    if not is_network(exc):
                        raise self._storage.translate(exc, "GET", self._key) from exc
                    breaks = self._pause(exc, breaks, index, start + got, stopped)
                    self._drop(body)
                    body = None
                    continue
                if not chunk:
                    reason = Retryable(f"the body of bytes {start}-{end - 1} ended at byte {start + got}")
                    breaks = self._pause(reason, breaks, index, start + got, stopped)
                    self._drop(body)
                    body = None
                    continue
                chunks.append(chunk)
                got += len(chunk)
                breaks = 0  # bytes flow again: a later drop gets the full set of tries
        finally:
            self._drop(body)
        return chunks

    @staticmethod
    def _drop(body: Any) -> None:
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()

    def _pause(self, exc: Exception, breaks: int, index: int, at: int, stopped: threading.Event) -> int:
        """After a range's body broke: a pause before resuming it from byte ``at``; the breaks so far."""
        pauses = self._storage.transfer_pauses
        if breaks >= len(pauses):
            raise self._storage.translate(GaveUp(exc, breaks + 1, 0.0), "GET", self._key) from exc
        pause = pauses[breaks]
        logger.warning("reading %s broke at byte %d (%s); resuming range %d from there in %.1f s", self.where, at,
                       network_reason(exc), index, pause)
        self.resumed.append((index, at))
        stopped.wait(pause)
        return breaks + 1

    def readable(self) -> bool:
        return True

    def _head(self) -> bytes | None:
        """The chunk being read (its unread part starts at ``_offset``); the next range's first at its end."""
        if self.closed:
            raise ValueError("read of a closed S3 object stream")
        while not self._chunks:
            assert self._window is not None
            chunks = self._window.next()
            if chunks is None:
                return None
            self._chunks, self._offset = chunks, 0
        return self._chunks[0]

    def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes of the chunk being read (the chunk itself when all of it is wanted)."""
        chunk = self._head()
        if chunk is None:
            return b""
        if self._offset == 0 and size >= len(chunk):
            self._chunks.popleft()
            return chunk
        piece = chunk[self._offset:self._offset + size]
        self._offset += len(piece)
        if self._offset == len(chunk):
            self._chunks.popleft()
            self._offset = 0
        return piece

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes (fewer only at the end of the object); all the rest when ``size`` is negative."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self._take(READ_CHUNK), b""))
        first = self._take(size)
        if len(first) == size or not first:
            return first
        pieces = [first]
        wanted = size - len(first)
        while wanted:
            piece = self._take(wanted)
            if not piece:
                break
            pieces.append(piece)
            wanted -= len(piece)
        return b"".join(pieces)

    def read1(self, size: int = -1) -> bytes:
        return self._take(READ_CHUNK if size < 0 else size)

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as outer, outer.cast("B") as view:
            filled = 0
            while filled < len(view):
                piece = self._take(len(view) - filled)
                if not piece:
                    break
                view[filled:filled + len(piece)] = piece
                filled += len(piece)
            return filled

    def close(self) -> None:
        if not self.closed:
            window = getattr(self, "_window", None)
            if window is not None:
                window.close()
            self._drop(getattr(self, "_first", None))
            self._chunks = collections.deque()
        super().close()


def open_s3(url: str, settings: RemoteSettings | None = None, **options: Any) -> S3Storage:
    """The storage for ``s3://bucket/prefix``: ``settings`` (bdr.yaml's remote section) and keyword
    overrides of its fields (``endpoint_url=...``, ``part_size_mib=...``)."""
    bucket, prefix = parse_url(url)
    base = settings or RemoteSettings()
    known = {f.name for f in dataclasses.fields(RemoteSettings)}
    transport = {k: options.pop(k) for k in TRANSPORT_OPTIONS & set(options)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(detail=f"unknown S3 option(s) {', '.join(unknown)}; known: "
                                f"{', '.join(sorted(known | TRANSPORT_OPTIONS))}")
    return S3Storage(bucket, prefix, dataclasses.replace(base, **options) if options else base, **transport)


register_scheme("s3", open_s3)

__all__ = ["ARCHIVE_CLASSES", "S3ObjectStream", "S3Sink", "S3Storage", "open_s3", "parse_url", "require_encryption"]
