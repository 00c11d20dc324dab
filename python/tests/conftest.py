import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    # A fixed seed per test (from its name): failures reproduce.
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))
