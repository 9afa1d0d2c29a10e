"""``his models ...``: list the catalog and export Triton model repositories."""

from __future__ import annotations

from pathlib import Path

import click

from ._catalog import Catalog
from ._errors import ModelNotFoundError

__all__ = ["models"]

_CATALOG_OPTION = click.option(
    "--catalog",
    "catalogs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A catalog YAML file (repeatable); the shipped catalog when omitted.",
)


def _load(catalogs: tuple[Path, ...]) -> Catalog:
    try:
        return Catalog.load(*catalogs)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def models() -> None:
    """The inference model catalog."""


@models.command("list")
@_CATALOG_OPTION
def list_models(catalogs: tuple[Path, ...]) -> None:
    """List models with their task, result type, validation status and placements."""
    for entry in _load(catalogs).entries():
        where = ", ".join(p.label for p in entry.placements) or "no placements"
        click.echo(
            f"{entry.key}\t{entry.task}\t{entry.fhir.output_type}\t"
            f"{entry.card.validation_status}\t{where}"
        )


@models.command("export")
@_CATALOG_OPTION
@click.option(
    "--target",
    type=click.Choice(["triton"]),
    default="triton",
    show_default=True,
    help="Repository layout to write.",
)
@click.option(
    "--accelerator",
    "accelerators",
    multiple=True,
    required=True,
    help="Accelerator kind, e.g. nvidia-h100, amd-mi300x, ascend-910b, cpu (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder; one repository per accelerator kind beneath it.",
)
@click.option("--model", "names", multiple=True, help="Model name to export (repeatable).")
@click.option("--max-batch-size", default=64, show_default=True, help="Dynamic batching limit.")
@click.option("--instances", default=1, show_default=True, help="Model instances per device.")
def export(
    catalogs: tuple[Path, ...],
    target: str,
    accelerators: tuple[str, ...],
    out: Path,
    names: tuple[str, ...],
    max_batch_size: int,
    instances: int,
) -> None:
    """Write Triton model repositories: TorchScript for NVIDIA, ONNX for AMD, Ascend, CPU."""
    # Imported here: exporting needs torch and tritonclient, listing does not.
    from ._export import export_triton_repository

    catalog = _load(catalogs)
    for accelerator in accelerators:
        try:
            written = export_triton_repository(
                catalog,
                out / accelerator,
                accelerator=accelerator,
                models=names,
                max_batch_size=max_batch_size,
                instance_count=instances,
            )
        except (ValueError, ModelNotFoundError) as exc:
            raise click.ClickException(str(exc)) from exc
        for item in written:
            click.echo(f"{target}\t{accelerator}\t{item.key}\t{item.format}\t{item.directory}")
