"""Run an erasure request through the ZenML pipeline: `python run.py configs/request_digits_forget_3.yaml`."""

import sys

from pipelines.run_request import main

if __name__ == "__main__":
    sys.exit(main())
