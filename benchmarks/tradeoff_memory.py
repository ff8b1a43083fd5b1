"""Peak memory of one run: the CUDA allocator's peak on a GPU, else the process RSS sampled every 10 ms."""

import threading

import psutil
import torch


class PeakMemory:
    """`with PeakMemory() as m: ...` then `m.peak_mb` (MiB)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s, self.peak_mb = interval_s, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if torch.cuda.is_available():
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()
