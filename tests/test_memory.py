"""Memory: conversions that view instead of copying, and VGG16's weights mapped from one file.

Each claim is checked two ways: the shared model computes what the copied one does, and the
memory it uses is the original's (storage pointers) or the file's (/proc/self/smaps).
"""

import copy

import pytest
import torch
from torch import nn

import fcconv
from fcconv.course import weight_cache


def seeded(model, seed=0):
    torch.manual_seed(seed)
    return model.double()


def storages(model) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


@pytest.mark.parametrize("shape, order", [((2, 3, 3), "chw"), ((2, 3, 3), "hwc"), ((4, 5), "chw"),
                                          ((6,), "chw")])
def test_linear_to_conv_shared_is_a_view_that_computes_the_same(shape, order):
    fc = seeded(nn.Linear(int(torch.tensor(shape).prod()), 5))
    copied = fcconv.linear_to_conv(fc, shape, order)
    shared = fcconv.linear_to_conv(fc, shape, order, share_weights=True)
    x = torch.randn(3, *shape if len(shape) > 1 else (*shape, 1, 1), dtype=torch.float64)
    with torch.no_grad():  # (a permuted view sums in another order: the last bits may differ)
        torch.testing.assert_close(shared(x), copied(x))
    assert storages(shared) == storages(fc) and not storages(copied) & storages(fc)
    with torch.no_grad():  # the same memory: a change to the Linear shows in the conv
        fc.bias.add_(1.0)
        fc.weight.mul_(2.0)
        torch.testing.assert_close(shared(x).flatten(1), fc(x.flatten(1) if order == "chw"
                                                            else x.movedim(1, -1).flatten(1)))


def test_linear_to_conv_shares_a_weight_that_is_not_contiguous():
    fc = nn.Linear(4, 6).double()
    fc.weight = nn.Parameter(torch.randn(6, 8, dtype=torch.float64)[:, ::2])  # (6, 4), strided
    shared = fcconv.linear_to_conv(fc, (1, 2, 2), share_weights=True)
    assert storages(shared) == storages(fc)
    x = torch.randn(2, 1, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(shared(x).flatten(1), fc(x.flatten(1)))


@pytest.mark.parametrize("build, shape", [(fcconv.lenet5, (1, 32, 32)),
                                          (fcconv.tiny_vgg, (3, 64, 64))])
def test_convolutionalize_shared_allocates_no_weights_and_scores_the_same(build, shape):
    model = seeded(build()).eval()
    copied = fcconv.convolutionalize(model, shape)
    shared = fcconv.convolutionalize(model, shape, share_weights=True)
    assert storages(shared) <= storages(model)
    assert not storages(copied) & storages(model)
    x = torch.randn(2, shape[0], shape[1] + 13, shape[2] + 9, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(shared(x), copied(x), rtol=0, atol=0)
        torch.testing.assert_close(shared(x), fcconv.sliding_windows(model, x, shape[1], shared.jump))


def test_convolutionalize_shared_leaves_the_original_a_classifier():
    model = seeded(fcconv.lenet5())
    before = copy.deepcopy(model.state_dict())
    fcconv.convolutionalize(model, (1, 32, 32), share_weights=True)
    assert isinstance(model[7], nn.Linear)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def mapped_bytes(path) -> tuple[int, int]:
    """(resident bytes, private anonymous bytes) of this process's mappings of ``path``."""
    rss = anon = 0
    inside = False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = line.rstrip().endswith(str(path))
        elif inside and head[0] == "Rss:":
            rss += int(head[1]) * 1024
        elif inside and head[0] == "Anonymous:":
            anon += int(head[1]) * 1024
    return rss, anon


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FCCONV_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("init", ["torchvision", "pytorch"])
def test_cached_vgg16_holds_the_seeded_weights_mapped_from_one_file(cache, init):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    mapped = weight_cache.vgg16(seed=0, init=init)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random numbers: as they were
    path = weight_cache.path_of(0, init)
    assert path.parent.parent == cache and not path.stat().st_mode & 0o222  # read-only
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = fcconv.vgg16()
        if init == "pytorch":  # what notebook 05 says the file holds
            for m in reference.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.reset_parameters()
    theirs = reference.state_dict()
    assert mapped.state_dict().keys() == theirs.keys()
    assert all(torch.equal(v, theirs[k]) for k, v in mapped.state_dict().items())
    del reference, theirs
    # Every weight was read above, so its pages are resident: and they are the file's pages,
    # not memory of this process's own.
    resident, private = mapped_bytes(path)
    weights = sum(p.nbytes for p in mapped.parameters())
    assert resident >= 0.99 * weights and private == 0, (resident, private, weights)


def test_cached_vgg16_changes_stay_in_the_kernel_and_the_file_is_built_once(cache):
    a = weight_cache.vgg16()
    path = weight_cache.path_of()
    stamp = path.stat().st_mtime_ns
    with torch.no_grad():
        a.classifier[6].bias.add_(1.0)  # copy-on-write: this kernel's own page now
    b = weight_cache.vgg16()
    assert path.stat().st_mtime_ns == stamp
    assert torch.equal(b.classifier[6].bias, torch.zeros(1000))  # torchvision's init: zero
    assert torch.equal(a.classifier[6].bias, torch.ones(1000))


def test_cached_vgg16_without_a_writable_cache_builds_in_memory(cache, monkeypatch, capsys):
    def unwritable(*args):
        raise PermissionError(13, "Permission denied", str(cache))

    monkeypatch.setattr(weight_cache, "build", unwritable)
    model = weight_cache.vgg16(seed=0)
    assert "built in this kernel's memory instead" in capsys.readouterr().err
    assert not any(p.is_meta for p in model.parameters())
    assert not (cache / "weights").exists()


def test_cached_vgg16_refuses_an_unknown_init(cache):
    with pytest.raises(ValueError, match="init must be one of 'torchvision', 'pytorch'; got 'kaiming'"):
        weight_cache.vgg16(init="kaiming")


def peak_growth_mb(fn) -> float:
    """How far this process's peak resident memory rises above where it is now, during fn()."""
    def status(key):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from what is resident now
    before = status("VmRSS")
    fn()
    return (status("VmHWM") - before) / 1024


def test_a_converted_linear_runs_without_copying_its_weight():
    # oneDNN, PyTorch's default CPU convolution, copies the weight into a layout of its own at
    # every call; the conv that linear_to_conv returns does not (VGG16's fc6: 411 MB saved).
    torch.manual_seed(0)
    fc = nn.Linear(256 * 7 * 7, 1024)  # a 49 MB weight
    conv = fcconv.linear_to_conv(fc, (256, 7, 7), share_weights=True)
    plain = nn.Conv2d(256, 1024, 7)
    x = torch.randn(1, 256, 7, 8)
    with torch.no_grad():
        plain.weight.copy_(conv.weight)
        plain.bias.copy_(conv.bias)
        mb = fc.weight.nbytes / 2**20
        assert torch.backends.mkldnn.enabled
        assert peak_growth_mb(lambda: plain(x)) > 0.9 * mb        # the copy this avoids
        assert peak_growth_mb(lambda: conv(x)) < 0.25 * mb
        assert torch.backends.mkldnn.enabled                      # left as it was
        torch.testing.assert_close(conv(x), plain(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(conv(x)[..., 0].flatten(1), fc(x[..., :7].flatten(1)),
                                   rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError):
        conv(torch.randn(1, 3, 7, 7))                             # wrong channels: torch's error
    assert torch.backends.mkldnn.enabled                          # ...and still left as it was
