"""Device choice (CUDA when present, CPU otherwise; bf16 autocast and channels_last on CUDA only)."""

import warnings

import pytest
import torch

from spurlab import device as dev
from spurlab.errors import SpurlabError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_is_cpu_without_a_gpu(no_gpu):
    assert dev.pick_device("auto") == torch.device("cpu")
    assert dev.pick_device() == torch.device("cpu")
    assert dev.pick_device("cpu") == torch.device("cpu")


def test_auto_is_cuda_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert dev.pick_device("auto") == torch.device("cuda")
    assert dev.pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(SpurlabError, match="'cuda:1' requested but only 1 CUDA device"):
        dev.pick_device("cuda:1")


def test_cuda_without_a_gpu_is_a_clear_error(no_gpu):
    with pytest.raises(SpurlabError, match="compute.device: 'cuda' requested but no CUDA device is available"):
        dev.pick_device("cuda")
    with pytest.raises(SpurlabError, match="unknown device 'tpu'"):
        dev.pick_device("tpu")


def test_autocast_is_a_no_op_on_cpu_and_bf16_on_cuda():
    with dev.autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with warnings.catch_warnings():  # without a GPU torch warns that it disables the context
        warnings.simplefilter("ignore")
        ctx = dev.autocast(torch.device("cuda"))
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16 and ctx.device == "cuda"


def test_prepare_model_keeps_cpu_memory_format():
    conv = torch.nn.Conv2d(3, 4, 3)
    out = dev.prepare_model(conv, torch.device("cpu"))
    assert out.weight.is_contiguous() and not out.weight.is_contiguous(memory_format=torch.channels_last)
    assert out.weight.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_prepare_model_uses_channels_last_on_cuda():
    out = dev.prepare_model(torch.nn.Conv2d(3, 4, 3), torch.device("cuda"))
    assert out.weight.is_cuda and out.weight.is_contiguous(memory_format=torch.channels_last)
