"""Device choice (CUDA when present, CPU otherwise; bf16 autocast on CUDA only; channels_last on CUDA,
and on CPU for training only)."""

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


def test_prepare_model_keeps_cpu_memory_format_for_inference():
    conv = torch.nn.Conv2d(3, 4, 3)
    out = dev.prepare_model(conv, torch.device("cpu"))
    assert out.weight.is_contiguous() and not out.weight.is_contiguous(memory_format=torch.channels_last)
    assert out.weight.device.type == "cpu"


def test_cpu_training_goes_channels_last_and_computes_the_same_function():
    """Model and batches channels_last for CPU training (`train.to_device(..., training=True)`),
    contiguous batches for CPU inference; the layout does not change what the model computes."""
    from spurlab.models import build_classifier
    from spurlab.train import to_device

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = build_classifier("resnet10_small", 10, 32, {"width": 8}).eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        trained_layout = dev.prepare_model(model, cpu, training=True)
        assert trained_layout.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        xb = to_device(x, cpu, training=True)
        assert xb.is_contiguous(memory_format=torch.channels_last) and to_device(x, cpu).is_contiguous()
        assert torch.allclose(trained_layout(xb), plain, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_prepare_model_uses_channels_last_on_cuda():
    out = dev.prepare_model(torch.nn.Conv2d(3, 4, 3), torch.device("cuda"))
    assert out.weight.is_cuda and out.weight.is_contiguous(memory_format=torch.channels_last)
