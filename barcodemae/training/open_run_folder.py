"""The first stage of a run: its output folder claimed (a new run) or continued (a resume), before any data loads.

Why first: a resume with other arguments or other data, a checkpoint of another run, or a folder holding another
run's files must fail in seconds, before the data is read or an NPMI table counted; and ``training_args.json`` is
written only once the run may use the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelerate import Accelerator

from barcodemae.errors import check_writable_folder
from barcodemae.run_layout import RunLayout

from .arguments import TrainingArguments, save_arguments
from .checkpoints import check_resume_arguments, checkpoint_run_id, resolve_checkpoint
from .data_identity import check_resume_data
from .initial_model import adopt_initial_model
from .run_folder import adopt_resumed_run, check_new_run, check_resumed_run, planned_artefacts, read_run_id, start_run


def open_run_folder(
    args: TrainingArguments, layout: RunLayout, accelerator: Accelerator, data_identity: dict[str, Any] | None
) -> tuple[TrainingArguments, Path | None, str]:
    """The run's folder ``layout``, before any data is loaded: a new run (refusing another run's files) or a
    resumed one (its checkpoint checked against the arguments, the data's fingerprint ``data_identity`` and the
    folder's run id), ``training_args.json`` written.

    Returns the arguments with ``--init_from``'s architecture and tokenizer adopted, the checkpoint to resume from
    (``None`` for a new run) and the run id.
    """
    output_dir = layout.root
    args = adopt_initial_model(args)  # --init_from fixes architecture and tokenizer before anything is saved
    planned = planned_artefacts(simulated_data=not args.data, tensorboard=args.report_to in ("tensorboard", "all"))
    protected = [Path(args.data)] if args.data else []  # --overwrite_output_dir never deletes the training data
    checkpoint = resumed_run_id = None
    if args.resume_from_checkpoint:
        # Before training_args.json is rewritten with this run's arguments, and before any data is loaded.
        checkpoint = resolve_checkpoint(args.resume_from_checkpoint, layout)
        check_resume_arguments(checkpoint, args)
        check_resume_data(checkpoint, args.data, data_identity)
        resumed_run_id = checkpoint_run_id(checkpoint)
        check_resumed_run(output_dir, checkpoint, resumed_run_id)
    else:
        check_new_run(output_dir, args.overwrite_output_dir, planned, protected)  # every process: an error stops all
    if accelerator.is_main_process:
        check_writable_folder(output_dir)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if checkpoint is None:
            start_run(output_dir, args.overwrite_output_dir, planned, protected)
        else:
            adopt_resumed_run(output_dir, checkpoint, resumed_run_id, planned)
        save_arguments(args, layout.training_args)
    accelerator.wait_for_everyone()
    return args, checkpoint, read_run_id(output_dir)


__all__ = ["open_run_folder"]
