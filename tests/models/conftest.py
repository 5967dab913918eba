"""Fixtures for the model tests: every test here runs with one intra-op thread.

The models are small (a few thousand to a few hundred thousand parameters) and the tensors
tiny: threads gain nothing, and on a shared machine the thread pool's waiting makes each
step many times slower.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
