"""One process of a data-parallel run on the CPU (gloo), as voxspace.job_entry runs on each GPU of
a multi-GPU Job, without the Hub: rank 0 trains the run in `run_dir` as run_service would, the
other ranks share its steps (voxspace.data_parallel.train_as_helper).

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 ... \\
        -m tests.support.data_parallel_run RUN_DIR TAKES_DIR MODEL_DIR CONFIG_JSON
"""

from __future__ import annotations

import json
import sys

from voxspace import data_parallel
from voxspace.model import ModelConfig
from voxspace.train import TrainConfig, Trainer


def main(run_dir: str, takes_dir: str, model_dir: str, config: str) -> None:
    import torch

    torch.set_num_threads(1)  # two processes on a small CI machine
    ranks = data_parallel.join()
    try:
        if ranks.is_main:
            trainer = Trainer(
                run_dir,
                TrainConfig(**json.loads(config)),
                takes_dir,
                ModelConfig(model_dir, precision="fp32"),
                ranks=data_parallel.current(),
            )
            summary = trainer.train_slice(budget_s=float("inf"))
            assert summary.done, summary
        else:
            data_parallel.train_as_helper(run_dir, ranks)
    finally:
        data_parallel.leave()


if __name__ == "__main__":
    main(*sys.argv[1:5])
