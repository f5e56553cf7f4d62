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

    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # several processes on a small CI machine
    ranks = data_parallel.join()
    cfg = TrainConfig(**json.loads(config))
    try:
        if ranks.is_main:
            trainer = Trainer(
                run_dir,
                cfg,
                takes_dir,
                ModelConfig(model_dir, precision=cfg.precision),
                ranks=data_parallel.current(),
            )
            summary = trainer.train_slice(budget_s=float("inf"))
            if not summary.done:
                raise SystemExit(f"rank 0 stopped before the end: {summary}")
        else:
            data_parallel.train_as_helper(run_dir, ranks)
    finally:
        data_parallel.leave()


if __name__ == "__main__":
    main(*sys.argv[1:5])
