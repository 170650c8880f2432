"""``bdr images``: the container images bdr runs Redis and Qdrant from.

``bdr images build redis`` makes ``bdr/redis:<version>`` offline from this host's Redis
binaries (for machines that cannot pull ``redis:7-alpine``); ``bdr images list`` shows
the local images bdr can use, built and upstream.
"""

from __future__ import annotations

import click

from bdr.cli.app import App, json_option, pass_app
from bdr.cli.backup_cmd import _size
from bdr.errors import UsageError
from bdr.runtime.images import build_redis_image, list_images


@click.group("images")
def images_group() -> None:
    """Container images for the docker runtime (built offline or found locally)."""


@images_group.command("build")
@click.argument("service", type=click.Choice(["redis", "qdrant"]))
@click.option("--force", is_flag=True, help="Build again even when the image exists.")
@json_option
@pass_app
def build_command(app: App, service: str, force: bool) -> None:
    """Build bdr/redis:<version> from this host's redis-server and its libraries (no registry needed)."""
    if service == "qdrant":
        raise UsageError(detail="bdr cannot build a Qdrant image offline: load one (docker load -i qdrant.tar) "
                         "or pull qdrant/qdrant where a registry is reachable")
    from bdr.runtime.docker_engine import docker_client

    with app.progress("building bdr/redis from the host's binaries"):
        result = build_redis_image(docker_client(), force=force)
    if app.json_output:
        app.emit_json(result.as_dict())
        return
    if result.built:
        app.line(f"built {result.tag} ({result.image_id[7:19]}): {result.files} files, "
                 f"{_size(result.rootfs_bytes)}, {result.seconds:.1f}s")
    else:
        app.line(f"{result.tag} is already there ({result.image_id[7:19]}); --force builds it again")


@images_group.command("list")
@json_option
@pass_app
def list_command(app: App) -> None:
    """Local Redis and Qdrant images the docker runtime can use."""
    from bdr.runtime.docker_engine import docker_client

    images = list_images(docker_client())
    if app.json_output:
        app.emit_json([image.as_dict() for image in images])
        return
    if not images:
        app.line("no Redis or Qdrant image on this Docker engine: run `bdr images build redis`")
        return
    app.table("images for the docker runtime", ["service", "image", "id", "size", "origin", "created"],
              [(i.service, i.tag, i.image_id[7:19], _size(i.size), i.origin, i.created[:19].replace("T", " "))
               for i in images])


def register(cli: click.Group) -> None:
    cli.add_command(images_group)
