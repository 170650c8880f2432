"""Typed errors: what went wrong, how to fix it, and the exit code the CLI returns.

One root (:class:`BdrError`), one base per area, leaf classes that are just a docstring.
A class's docstring is its message template, formatted with the keyword arguments given
when it is raised; the class carries its exit code. Lower-level exceptions (redis-py,
boto3, qdrant-client, OSError) are translated at the boundary with ``raise ... from exc``
so the user never sees them without ``--debug``.

Exit codes (documented in the README):

==  =====================================================
0   success
1   a check failed (verify found a problem, a target was breached, a backup is stale)
2   usage: wrong flags or arguments
3   configuration: bdr.yaml missing or invalid, unknown target
4   not found: backup set, file or source
5   locked: another bdr holds the repository lock
6   integrity: checksum mismatch, corrupt or truncated backup, unsafe archive
7   service: Redis/Qdrant/S3 unreachable or refused the operation
8   crypto: wrong or missing key, tampered ciphertext
9   storage: destination not writable, disk full
10  restore failed and the live data was rolled back to what it was before (the safety backup)
11  repair is not possible: restore from a backup instead
12  restore failed and so did the rollback: the pre-restore data is in the named safety backup
13  an interrupted restore must be finished (--resume) or rolled back (--abort) first
==  =====================================================
"""

from __future__ import annotations

from typing import Any, ClassVar


class BdrError(Exception):
    """{detail}"""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str | None = None, /, **fields: Any) -> None:
        self.fields = fields
        if message is None:
            template = (type(self).__doc__ or "{detail}").strip().split("\n\n")[0]
            template = " ".join(template.split())
            try:
                message = template.format(**fields)
            except (KeyError, IndexError):
                message = f"{template} {fields}"
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class CheckFailed(BdrError):
    """{detail}"""

    exit_code = 1


# --- usage and configuration -------------------------------------------------------------


class UsageError(BdrError):
    """{detail}"""

    exit_code = 2


class ConfigError(BdrError):
    """configuration error in {path}: {detail}"""

    exit_code = 3


class UnknownTarget(ConfigError):
    """no {kind} instance named {name!r} in {path}; known: {known}"""


# --- repository ----------------------------------------------------------------------------


class RepositoryError(BdrError):
    """repository error: {detail}"""

    exit_code = 4


class BackupNotFound(RepositoryError):
    """backup {ref!r} not found in {repo}; run `bdr list` to see the backup sets"""


class NothingToBackUp(RepositoryError):
    """{detail}"""


class NothingToRestore(RepositoryError):
    """{detail}; nothing was changed"""


class IncompleteBackup(RepositoryError):
    """backup {ref!r} has no manifest: it is incomplete (interrupted or failed) and cannot be used"""


class RepositoryLocked(BdrError):
    """repository {repo} is locked by pid {pid} on {host} since {since} ({operation}); wait for it to
    finish, or remove {path} if that process is gone"""

    exit_code = 5


class LockWaitTimedOut(RepositoryLocked):
    """repository {repo} is still locked by pid {pid} on {host} since {since} ({operation}) after waiting {waited}
    (--wait-lock); let that run finish, or remove {path} if that process is gone"""


# --- integrity -------------------------------------------------------------------------------


class IntegrityError(BdrError):
    """{detail}"""

    exit_code = 6


class ChecksumMismatch(IntegrityError):
    """checksum mismatch in {name} of backup {ref}: expected sha256 {expected}, got {actual}; the backup is
    corrupt, restore an older one"""


class DamagedBackup(IntegrityError):
    """backup {ref} is damaged ({reason}); bdr will not use it: run `bdr verify {ref}` for the details, or use
    another set (`bdr list` marks the damaged ones)"""


class CorruptArchive(IntegrityError):
    """archive {name} is corrupt or truncated: {detail}"""


class UnsafeArchive(IntegrityError):
    """refusing archive member {member!r}: {reason}"""


# --- copies (bdr copy, bdr backup --also-remote) -----------------------------------------------


class CopyRefused(UsageError):
    """refusing to copy backup {ref}: {reason}"""


class CopyConflict(IntegrityError):
    """{repo} already holds a set {ref} that {detail}; bdr leaves it alone: delete {path} and run the copy again"""


class CopyCheckFailed(IntegrityError):
    """the copy of {ref} in {repo} does not match its manifest ({detail}); it was deleted: run the copy again"""


# --- services --------------------------------------------------------------------------------


class ServiceError(BdrError):
    """{detail}"""

    exit_code = 7


class ServiceUnavailable(ServiceError):
    """cannot reach {service} at {address}: {detail}; is it running? check the url in bdr.yaml"""


class ServiceTimeout(ServiceError):
    """{service} did not {what} within {seconds:.0f}s: {detail}"""


# --- crypto ----------------------------------------------------------------------------------


class CryptoError(BdrError):
    """{detail}"""

    exit_code = 8


class WrongKey(CryptoError):
    """cannot decrypt {name}: wrong key or passphrase (key id {expected}, given {actual})"""


class TamperedData(CryptoError):
    """{name} failed authentication: the ciphertext was modified, truncated or reordered"""


class MissingKey(CryptoError):
    """{detail}"""


# --- storage ---------------------------------------------------------------------------------


class StorageError(BdrError):
    """{detail}"""

    exit_code = 9


class NoSpace(StorageError):
    """no space left on {path}: free some space (or prune old backups) and run again; nothing was changed"""


class NoRoom(StorageError):
    """no room in {path} for Redis {name} to run after the restore: {free} free beside the restored files, it needs
    {need}; free space there (the current files are kept until the restore is verified), then run again; nothing
    was touched"""


class NotWritable(StorageError):
    """cannot write to {path}: {detail}"""


# --- restore and repair ----------------------------------------------------------------------


class RestoreError(BdrError):
    """{detail}"""

    exit_code = 10


class RestoreRolledBack(RestoreError):
    """restore of {ref} failed at step {step!r} ({detail}); rolled back: {undo}"""


class RollbackFailed(RestoreError):
    """{detail}"""

    exit_code = 12


class RestoreInterrupted(BdrError):
    """{detail}"""

    exit_code = 13


class RestoreInProgress(BdrError):
    """restore {id} of {source} {instance} is running (pid {pid} on {host}, step {step!r}); wait for it to finish"""

    exit_code = 5


class NothingToResume(BdrError):
    """no interrupted restore of {source} {instance} is recorded: nothing to resume or abort (`bdr status` lists
    interrupted restores)"""

    exit_code = 4


class WouldLoseWrites(BdrError):
    """{detail}"""

    exit_code = 1


class PreflightFailed(ServiceError):
    """refusing to restore {what} (nothing was touched): {detail}"""


class RepairImpossible(BdrError):
    """{detail}"""

    exit_code = 11


# --- qdrant ------------------------------------------------------------------------------------


class IncompatibleVersion(ServiceError):
    """{what} was taken from Qdrant {source} and cannot be restored into Qdrant {target}: {detail}"""


class SelectionConflict(UsageError):
    """{count} {what} already exist in {target} (e.g. {examples}); nothing was changed: run again with
    --conflict skip (keep the live ones) or --conflict replace (overwrite them)"""


class WrongSelection(UsageError):
    """bdr restore {source} selects with {takes}, not {given}"""


class ServiceBusy(ServiceError):
    """{service} at {address} is in use by another process: {detail}"""


# --- redis selective restore and repair -----------------------------------------------------------


class BackupDoesNotLoad(IntegrityError):
    """the data files in {path} do not load into a temporary redis-server: {detail}; run `bdr verify` on
    the backup, or restore an older one"""


class LegacyDoesNotLoad(IntegrityError):
    """the old script's backup {path} does not load into Redis ({what}: {detail}); nothing was touched: check a
    copy with redis-check-rdb / redis-check-aof (`redis-check-aof --fix` on a copy repairs a torn tail), or restore
    another backup"""


# --- off-site storage (S3) --------------------------------------------------------------------


class RemoteAccessDenied(ServiceError):
    """S3 refused access to bucket {bucket} ({code}): check the credentials bdr found (AWS_PROFILE or
    remote.profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the instance role) and that they may read
    and write s3://{bucket}"""


class RemoteBucketNotFound(ServiceError):
    """bucket {bucket} does not exist at {endpoint}: create it (aws s3 mb s3://{bucket}) or fix the
    remote url (--remote or remote.url in bdr.yaml)"""


class ObjectArchived(ServiceError):
    """{key} is in the {storage_class} storage class and cannot be read until it is restored: run
    `bdr s3 thaw {ref} --remote {url}` (or `aws s3api restore-object --bucket {bucket} --key {key}
    --restore-request Days=7`), wait until the restore finishes (hours for GLACIER, up to 48 h for
    DEEP_ARCHIVE; run the thaw again to see its state), then run this command again"""


class PlaintextOffsite(UsageError):
    """refusing to send an unencrypted backup off-site to {url}: configure a key (encryption.key_file in
    bdr.yaml or $BDR_KEY), or accept plaintext explicitly with --allow-plaintext or remote.allow_plaintext:
    true"""


# --- git (bdr lint --changed-since, bdr drill --changed-since) ---------------------------------


class NotAGitRepository(UsageError):
    """{path} is not inside a git checkout: --changed-since compares commits, run it from the checkout"""


class UnknownGitRef(UsageError):
    """git ref {ref!r} is not known in {repo}: fetch it first (git fetch origin <branch>; in CI check out with
    fetch-depth: 0)"""


# --- containers (docker runtime, images) ---------------------------------------------------------


class DockerUnavailable(ServiceError):
    """cannot reach the Docker engine ({address}): {detail}; start it (`sudo systemctl start docker`, or
    scripts/ensure-docker.sh start) or point DOCKER_HOST at it"""


class ContainerNotFound(BdrError):
    """no container named {name!r} on the Docker engine: check `container:` of {where} in bdr.yaml (`docker ps
    -a` lists the containers)"""

    exit_code = 4


class VolumeNotFound(BdrError):
    """no Docker volume named {name!r}: check `volume:` in bdr.yaml (`docker volume ls` lists the volumes)"""

    exit_code = 4


class VolumeInUse(ServiceError):
    """volume {name!r} is used by running container(s) {containers}: stop them first, or let bdr stop them
    for the copy and start them again after"""


class ImageNotFound(BdrError):
    """image {ref!r} is not on the Docker engine: {hint}"""

    exit_code = 4


class ImageBuildFailed(ServiceError):
    """cannot build image {tag}: {detail}"""


# --- drill reports -------------------------------------------------------------------------------


class DrillResultNotFound(BdrError):
    """drill result {path} not found: pass a drill-<timestamp>.json written by `bdr drill` (in reports/ by
    default)"""

    exit_code = 4


class InvalidDrillResult(UsageError):
    """{path} is not a drill result: {detail}; pass a drill-<timestamp>.json written by `bdr drill`"""


class ReportTampered(IntegrityError):
    """report {run_id} failed verification: {detail}"""


class ReportNotRecorded(IntegrityError):
    """report {run_id} has no record in {history}: {detail}"""


class PdfUnavailable(ServiceError):
    """cannot print {path} to PDF: {detail}"""


class DrillBreached(CheckFailed):
    """BREACH: {detail}; see {report}"""


# --- the old runbook's openssl files ------------------------------------------------------------


class WrongPassphrase(WrongKey):
    """cannot decrypt {name}: wrong passphrase (tried openssl enc's sha256, md5 and -pbkdf2 key derivations);
    check the passphrase in {where}"""


# --- runtimes (how an instance is stopped and started) ----------------------------------------------------


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


# --- Redis snapshots and their content digest -------------------------------------------------------------


class BackupFailed(BdrError):
    """backup of Redis {name} failed: {detail}"""

    exit_code = 7


class SnapshotFailed(ServiceError):
    """the snapshot of Redis {name} failed: {detail}; nothing was backed up"""


class SnapshotNoSpace(StorageError):
    """the snapshot of Redis {name} failed: {detail}; free space in {dir} (Redis writes its RDB there) and run
    again; nothing was backed up"""


class RdbNotFound(BdrError):
    """RDB file {path} not found"""

    exit_code = 4


class RdbUnreadable(IntegrityError):
    """cannot read {path} as an RDB file: {detail}"""


class RdbCorrupt(IntegrityError):
    """{path} is not a valid RDB file: at byte offset {offset}, {detail}; the copy is corrupt or truncated: take the
    backup again, or use an older one"""


class RdbUnsupported(IntegrityError):
    """{path} cannot be digested: at byte offset {offset}, {detail}"""


class DigestExtensionMissing(BdrError):
    """the C extension bdr.engines.redis.rdb._digest is not built ({detail}): install a C compiler and the Python
    headers (`apt-get install gcc python3-dev`) and reinstall bdr (`pip install -e .`)"""


# --- continuous archiving and point-in-time restore (bdr archive redis, restore --to-time) -------------


class PointInTimeUnreachable(RepositoryError):
    """the archive of Redis {instance} cannot restore {time}: {why}; {reachable}"""


class ArchiverRunning(BdrError):
    """the archiver of Redis {instance} is already running (pid {pid} on {host} since {since}); one archiver per
    instance: stop that one first (systemctl stop bdr-archive-redis-{instance})"""

    exit_code = 5


class ReplicationRefused(ServiceError):
    """Redis {name} refused to stream its writes to the archiver ({detail}); {fix}"""


class SegmentCorrupt(IntegrityError):
    """archive segment {key} is corrupt: {detail}; nothing was changed: restore to a time before it (bdr archive list
    shows the recoverable windows) or from another repository"""


class StreamDesync(IntegrityError):
    """the replication stream of Redis {name} is not RESP where bdr expected a command (offset {offset}: {head!r});
    the archiver reconnects and takes a new base"""


# --- Redis Cluster ------------------------------------------------------------------------------------------


class NotACluster(ServiceError):
    """Redis {name} at {url} is not a cluster (cluster_enabled:0): {detail}"""


class ClusterNotHealthy(ServiceError):
    """Redis cluster {name} cannot be backed up: {detail}"""


class SkewTooLarge(BdrError):
    """the snapshots of the shards of Redis cluster {name} are {skew:.1f}s apart, more than the {rpo} RPO ({target}s):
    the set would not describe one moment; {detail}"""

    exit_code = 7


# --- Prometheus -------------------------------------------------------------------------------------


class AdminApiDisabled(ServiceError):
    """Prometheus {name} at {url} refused the TSDB snapshot ({detail}): its admin API is off; start it with
    --web.enable-admin-api and run again; nothing was backed up"""


class TsdbSnapshotFailed(ServiceError):
    """the TSDB snapshot of Prometheus {name} failed: {detail}; nothing was backed up"""


# --- Grafana ----------------------------------------------------------------------------------------


class GrafanaDbCorrupt(IntegrityError):
    """{path} is not a sound Grafana database ({detail}); nothing was backed up: repair it or restore the newest
    good set (bdr restore grafana latest)"""


class GrafanaSetMismatch(IntegrityError):
    """the Grafana database in {ref} is not what its manifest says ({detail}); nothing live was touched: restore
    another set (bdr list grafana)"""


class GrafanaApiError(ServiceError):
    """Grafana {name} at {url}: {detail}"""
