import pytest
import torch

from spurlab.device import autocast, pick_device
from spurlab.errors import SpurlabError


def test_auto_picks_cuda_only_when_present():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(SpurlabError, match="'cuda' requested but no CUDA device"):
        pick_device("cuda")
    with autocast(torch.device("cpu")):  # no-op on CPU: fp32 stays fp32
        assert (torch.ones(2) @ torch.ones(2)).dtype == torch.float32
