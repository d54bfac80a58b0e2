"""`python tests/train/held_cli.py ARGS`: the CLI, except that the process stops (sleeps) right after
saving the checkpoint at the step named by AUTONAD_TEST_HOLD ("epoch,step_in_epoch"), so a test can
kill -9 it at exactly that point instead of racing a fast run."""

import os
import sys
import time

from autonad.cli import main
from autonad.train.loop import Trainer

HOLD = tuple(int(v) for v in os.environ["AUTONAD_TEST_HOLD"].split(","))
save = Trainer.save


def save_then_hold(self) -> None:
    save(self)
    if (self.state.epoch, self.state.step_in_epoch) == HOLD:
        while True:  # killed here by the test; other ranks wait at their next collective
            time.sleep(1)


Trainer.save = save_then_hold
raise SystemExit(main(sys.argv[1:]))
