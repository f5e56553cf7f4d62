"""One process of a data-parallel run, as voxspace.job_entry runs on each GPU of a multi-GPU Job
but without the Hub: rank 0 trains the run in RUN_DIR to the end as run_service would, the other
ranks share its steps (voxspace.data_parallel.train_as_helper). Started without a launcher it is
the one-process run to compare with. Used by bench/data_parallel_check.py.

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 ... \\
        -m voxspace.devtools.data_parallel_run RUN_DIR TAKES_DIR MODEL_DIR CONFIG_JSON
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
        torch.set_num_threads(1)  # several processes on a small machine
    ranks = data_parallel.join()
    cfg = TrainConfig(**json.loads(config))
    try:
        if ranks.is_main:
            model_cfg = ModelConfig(model_dir, precision=cfg.precision)
            trainer = Trainer(run_dir, cfg, takes_dir, model_cfg, ranks=data_parallel.current())
            summary = trainer.train_slice(budget_s=float("inf"))
            if not summary.done:
                raise SystemExit(f"rank 0 stopped before the end: {summary}")
        else:
            data_parallel.train_as_helper(run_dir, ranks)
    finally:
        data_parallel.leave()


if __name__ == "__main__":
    main(*sys.argv[1:5])
