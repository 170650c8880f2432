"""The life of an off-site backup set in S3: uploaded, archived, thawed for a restore, expired.

An off-site set ages through the bucket's *lifecycle configuration*, derived from the
``remote:`` section of ``bdr.yaml``: after ``archive_after_days`` its data objects move to
a cold ``archive_class`` (GLACIER by default), after ``expire_after_days`` the set is
deleted (``bdr prune`` normally removes it earlier; the rule is the backstop that keeps an
abandoned bucket from growing forever), and parts of uploads abandoned by a killed backup
are discarded after ``abort_uploads_after_days`` (:data:`ABORT_UPLOADS_AFTER_DAYS`, one day:
no backup runs that long, and the parts of a dead one are billed until they go). The next
backup's sweep usually aborts them sooner (:meth:`bdr.storage.s3.S3Storage.abort_uploads`);
the rule covers a repository nobody writes to any more, and uploads outside any set.

The rules select objects by the repository prefix and by a ``bdr-tier`` tag that
:mod:`bdr.storage.s3` puts on every object it writes:

- ``index``: ``manifest.json`` and ``verify.json``. They never leave STANDARD, so ``bdr list``
  and ``bdr verify`` keep working on archived sets, and they expire a day *before* the data,
  so a set whose data is gone is never listed as complete (it becomes an incomplete set,
  swept by the next backup).
- ``data``: everything else of a set; archived, then expired.
- untagged: the repository's locks, which no rule touches.

An archived object cannot be read until it is *thawed*: a restore request makes a
temporary STANDARD copy after minutes (Expedited), hours (Standard) or up to 48 hours
(DEEP_ARCHIVE Bulk). :func:`thaw` requests it for every object of a set and reports where
each one stands, so ``bdr s3 thaw SET`` can simply be run again until all are readable.

Rules of the bucket that bdr did not write are kept as they are by :func:`apply`; bdr's
own rules are recognised by their ID (``bdr:<prefix>:<what>``).
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bdr.config import RemoteSettings
from bdr.repository.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from bdr.storage.s3 import S3Storage

logger = logging.getLogger(__name__)

TIER_TAG = "bdr-tier"
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
"""Storage classes whose objects must be restored before they can be read (GLACIER_IR need not)."""
INDEX_NAMES = frozenset({MANIFEST_NAME, "verify.json"})
LOCKS_DIR = "locks"
RESTORE_TIERS = ("Expedited", "Standard", "Bulk")
ABORT_UPLOADS_AFTER_DAYS = 1
"""Default ``DaysAfterInitiation`` of the rule aborting multipart uploads a killed run left."""


class Tier(enum.StrEnum):
    """The ``bdr-tier`` tag value of an object: which lifecycle rules apply to it."""

    INDEX = "index"
    DATA = "data"


def object_tier(key: str) -> Tier | None:
    """The tier of a repository key (relative to the repository prefix); None for locks."""
    parts = key.split("/")
    if parts[0] == LOCKS_DIR:
        return None
    return Tier.INDEX if parts[-1] in INDEX_NAMES else Tier.DATA


def set_of(key: str) -> str:
    """The backup set id a repository key belongs to (``redis/<set-id>/dump.rdb``), for messages."""
    parts = key.split("/")
    return parts[1] if len(parts) >= 3 else key


# --- the policy --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """What ``bdr.yaml`` asks of the bucket, for one repository prefix."""

    prefix: str
    archive_after_days: int | None = 90
    archive_class: str = "GLACIER"
    expire_after_days: int | None = 365
    abort_uploads_after_days: int = ABORT_UPLOADS_AFTER_DAYS

    @classmethod
    def from_settings(cls, settings: RemoteSettings, prefix: str) -> LifecyclePolicy:
        return cls(
            prefix=prefix.strip("/"),
            archive_after_days=settings.archive_after_days,
            archive_class=settings.archive_class,
            expire_after_days=settings.expire_after_days,
            abort_uploads_after_days=settings.abort_uploads_after_days,
        )

    @property
    def key_prefix(self) -> str:
        """The S3 key prefix the rules select (``prefix/``, or the whole bucket)."""
        return f"{self.prefix}/" if self.prefix else ""

    def rule_id(self, what: str) -> str:
        """``bdr:<prefix>:<what>``; hashed when the prefix is too long for an ID (255 chars)."""
        label = self.prefix if len(self.prefix) <= 200 else hashlib.sha256(self.prefix.encode()).hexdigest()[:16]
        return f"bdr:{label}:{what}"

    @property
    def id_namespace(self) -> str:
        return self.rule_id("")

    def _filter(self, tier: Tier | None) -> dict[str, Any]:
        if tier is None:
            return {"Prefix": self.key_prefix}
        tag = {"Key": TIER_TAG, "Value": str(tier)}
        if not self.key_prefix:
            return {"Tag": tag}
        return {"And": {"Prefix": self.key_prefix, "Tags": [tag]}}

    def rules(self) -> list[dict[str, Any]]:
        """The lifecycle rules, in the JSON shape of ``PutBucketLifecycleConfiguration``."""
        rules: list[dict[str, Any]] = []
        if self.archive_after_days is not None:
            rules.append({
                "ID": self.rule_id("archive"),
                "Status": "Enabled",
                "Filter": self._filter(Tier.DATA),
                "Transitions": [{"Days": self.archive_after_days, "StorageClass": self.archive_class}],
            })
        if self.expire_after_days is not None:
            rules.append({
                "ID": self.rule_id("expire-index"),
                "Status": "Enabled",
                "Filter": self._filter(Tier.INDEX),
                "Expiration": {"Days": self.expire_after_days},
            })
            rules.append({
                "ID": self.rule_id("expire-data"),
                "Status": "Enabled",
                "Filter": self._filter(Tier.DATA),
                "Expiration": {"Days": self.expire_after_days + 1},
            })
        rules.append({
            "ID": self.rule_id("abort-uploads"),
            "Status": "Enabled",
            "Filter": self._filter(None),
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": self.abort_uploads_after_days},
        })
        return rules

    def owns(self, rule: Mapping[str, Any]) -> bool:
        """Whether a bucket rule is one of bdr's for this prefix (and may be replaced)."""
        return str(rule.get("ID", "")).startswith(self.id_namespace)


# --- comparing a bucket's rules with the policy -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleShape:
    """A lifecycle rule reduced to what it does, so equal rules compare equal however S3 spells them."""

    status: str
    prefix: str
    tags: tuple[tuple[str, str], ...]
    transitions: tuple[tuple[int, str], ...]
    expiration_days: int | None
    abort_days: int | None
    other: tuple[str, ...]

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> RuleShape:
        flt = rule.get("Filter") or {}
        conj = flt.get("And") or {}
        prefix = str(conj.get("Prefix", flt.get("Prefix", rule.get("Prefix", ""))) or "")
        tags = [flt["Tag"]] if "Tag" in flt else list(conj.get("Tags", ()))
        transitions = tuple(sorted(
            (int(t.get("Days", -1)), str(t.get("StorageClass", ""))) for t in rule.get("Transitions", ())
        ))
        expiration = rule.get("Expiration") or {}
        abort = rule.get("AbortIncompleteMultipartUpload") or {}
        known = {"ID", "Status", "Filter", "Prefix", "Transitions", "Expiration", "AbortIncompleteMultipartUpload"}
        other = tuple(sorted(k for k in rule if k not in known))
        return cls(
            status=str(rule.get("Status", "")),
            prefix=prefix,
            tags=tuple(sorted((str(t["Key"]), str(t["Value"])) for t in tags)),
            transitions=transitions,
            expiration_days=int(expiration["Days"]) if "Days" in expiration else None,
            abort_days=int(abort["DaysAfterInitiation"]) if "DaysAfterInitiation" in abort else None,
            other=other,
        )

    def describe(self) -> str:
        what = []
        what += [f"to {cls} after {days} days" for days, cls in self.transitions]
        if self.expiration_days is not None:
            what.append(f"expire after {self.expiration_days} days")
        if self.abort_days is not None:
            what.append(f"abort uploads after {self.abort_days} days")
        what += list(self.other)
        tags = ",".join(f"{k}={v}" for k, v in self.tags)
        scope = f"prefix {self.prefix!r}" + (f" tags {tags}" if tags else "")
        return f"{self.status.lower()}, {scope}: {'; '.join(what) or 'no action'}"


@dataclass(frozen=True, slots=True)
class LifecycleCheck:
    """The result of comparing a bucket's lifecycle with the policy."""

    bucket: str
    prefix: str
    differences: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "prefix": self.prefix, "ok": self.ok,
                "differences": list(self.differences), "warnings": list(self.warnings)}


def compare(bucket_rules: Sequence[Mapping[str, Any]], policy: LifecyclePolicy) -> list[str]:
    """Each way bdr's rules in the bucket differ from the policy, one line each (empty: they match)."""
    wanted = {str(r["ID"]): r for r in policy.rules()}
    present = {str(r.get("ID", "")): r for r in bucket_rules if policy.owns(r)}
    differences = []
    for rule_id, rule in wanted.items():
        if rule_id not in present:
            differences.append(f"rule {rule_id} is missing: {RuleShape.of(rule).describe()}")
            continue
        have, want = RuleShape.of(present[rule_id]), RuleShape.of(rule)
        if have != want:
            differences.append(f"rule {rule_id} differs: bucket has {have.describe()}; policy wants {want.describe()}")
    differences += [
        f"rule {rule_id} is in the bucket but not in the policy: {RuleShape.of(rule).describe()}"
        for rule_id, rule in present.items()
        if rule_id not in wanted
    ]
    return differences


def _covers(rule_prefix: str, key_prefix: str) -> bool:
    return key_prefix.startswith(rule_prefix) or rule_prefix.startswith(key_prefix)


def foreign_overlaps(bucket_rules: Iterable[Mapping[str, Any]], policy: LifecyclePolicy) -> list[str]:
    """Rules bdr did not write that also delete or move backup objects: worth a warning."""
    warnings = []
    for rule in bucket_rules:
        if policy.owns(rule) or rule.get("Status") != "Enabled":
            continue
        shape = RuleShape.of(rule)
        acts = shape.expiration_days is not None or shape.transitions or "NoncurrentVersionExpiration" in rule
        if acts and _covers(shape.prefix, policy.key_prefix):
            warnings.append(f"rule {rule.get('ID', '(no id)')} also applies to the backups: {shape.describe()}")
    return warnings


def merged(bucket_rules: Sequence[Mapping[str, Any]], policy: LifecyclePolicy) -> list[dict[str, Any]]:
    """The bucket's rules with bdr's for this prefix replaced by the policy's; others untouched."""
    return [dict(r) for r in bucket_rules if not policy.owns(r)] + policy.rules()


# --- operations on a bucket ---------------------------------------------------------------------------


def policy_for(storage: S3Storage) -> LifecyclePolicy:
    return LifecyclePolicy.from_settings(storage.settings, storage.prefix)


def check(storage: S3Storage) -> LifecycleCheck:
    policy = policy_for(storage)
    rules = storage.lifecycle_rules()
    return LifecycleCheck(storage.bucket, policy.key_prefix, tuple(compare(rules, policy)),
                          tuple(foreign_overlaps(rules, policy)))


def apply(storage: S3Storage) -> list[dict[str, Any]]:
    """Put the policy's rules into the bucket, keeping every rule bdr does not own; returns them all."""
    policy = policy_for(storage)
    current = storage.lifecycle_rules()
    rules = merged(current, policy)
    if len(rules) > 1000:
        from bdr.errors import UsageError

        raise UsageError(detail=f"bucket {storage.bucket} would have {len(rules)} lifecycle rules; S3 allows 1000")
    storage.put_lifecycle_rules(rules)
    logger.info("lifecycle of s3://%s/%s applied (%d bdr rules, %d others kept)", storage.bucket,
                policy.key_prefix, len(policy.rules()), len(rules) - len(policy.rules()))
    return rules


# --- thawing archived objects ----------------------------------------------------------------------


class ThawState(enum.StrEnum):
    READABLE = "readable"
    """Not archived (or GLACIER_IR): readable now."""
    REQUESTED = "requested"
    """A restore request was just made."""
    IN_PROGRESS = "in-progress"
    """S3 is restoring it; run thaw again later."""
    RESTORED = "restored"
    """A temporary readable copy exists (until ``expiry``)."""


@dataclass(frozen=True, slots=True)
class ThawResult:
    key: str
    storage_class: str
    state: ThawState
    expiry: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "storage_class": self.storage_class, "state": str(self.state),
                "expiry": self.expiry}


def parse_restore_header(header: str | None) -> tuple[bool | None, str | None]:
    """``ongoing-request="false", expiry-date="..."`` → (ongoing, expiry); (None, None) when absent."""
    if not header:
        return None, None
    fields: dict[str, str] = {}
    for item in header.split('",'):
        name, _, value = item.partition("=")
        fields[name.strip()] = value.strip().strip('"')
    ongoing = fields.get("ongoing-request")
    return (ongoing == "true") if ongoing is not None else None, fields.get("expiry-date")


def thaw(storage: S3Storage, keys: Iterable[str], days: int = 7, tier: str = "Standard") -> list[ThawResult]:
    """Request a restore of every archived object among ``keys``; report where each one stands."""
    results = []
    for key in keys:
        storage_class, restore = storage.archive_state(key)
        if storage_class not in ARCHIVE_CLASSES:
            results.append(ThawResult(key, storage_class, ThawState.READABLE))
            continue
        ongoing, expiry = parse_restore_header(restore)
        if ongoing is None:
            storage.request_restore(key, days=days, tier=tier)
            logger.info("restore of s3://%s/%s requested (%s, %d days)", storage.bucket, key, tier, days)
            results.append(ThawResult(key, storage_class, ThawState.REQUESTED))
        elif ongoing:
            results.append(ThawResult(key, storage_class, ThawState.IN_PROGRESS))
        else:
            results.append(ThawResult(key, storage_class, ThawState.RESTORED, expiry))
    return results
