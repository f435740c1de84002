import pytest
import torch

from nin_export.core.errors import InputSizeError, UnknownModelError, WeightsError
from nin_export.models import build_model, create_model, get_spec, list_models, load_checkpoint, smallest_input_size
from nin_export.models.summary import summarize

EXACT = {
    ("nin-cifar10", 10): 966_986,
    ("nin-cifar10", 100): 984_356,
    ("nin-imagenet", 1000): 7_595_176,
    ("nin-seed", 10): 2_015_398,
    ("nin-seed", 1000): 7_439_608,
    ("alexnet", 1000): 61_100_840,
}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(("name", "classes"), list(EXACT))
def test_exact_parameter_counts(name, classes):
    m = create_model(name, num_classes=classes)
    assert n_params(m) == EXACT[(name, classes)]
    assert summarize(m, m.input_shape).params == EXACT[(name, classes)]


def test_registry_has_every_model():
    assert set(list_models()) == {"nin-cifar10", "fc-cifar10", "nin-imagenet", "fc-imagenet", "nin-seed", "fc-seed", "alexnet"}
    for name in list_models():
        spec = get_spec(name)
        if spec.twin:
            assert get_spec(spec.twin).twin == name


@pytest.mark.parametrize("name", ["nin-cifar10", "nin-imagenet", "nin-seed"])
def test_nin_output_shape_and_size_agnostic(name):
    m = create_model(name, num_classes=7, in_channels=1).eval()
    h, w = m.meta.input_size
    with torch.no_grad():
        assert m(torch.zeros(2, 1, h, w)).shape == (2, 7)
        assert m(torch.zeros(1, 1, h + 16, w + 32)).shape == (1, 7)  # global average pooling


def test_seed_matches_notebook_output_shape():
    m = create_model("nin-seed", num_classes=10).eval()
    with torch.no_grad():
        assert tuple(m(torch.zeros(1, 3, 224, 224)).shape) == (1, 10)


@pytest.mark.parametrize(("name", "size"), [("fc-cifar10", 32), ("fc-imagenet", 64), ("fc-seed", 96), ("alexnet", 96)])
def test_fc_twins_are_fixed_size(name, size):
    kw = {"fc_width": 32} if name.startswith("fc-") else {}
    m = create_model(name, num_classes=5, input_size=size, **kw).eval()
    with torch.no_grad():
        assert m(torch.zeros(2, 3, size, size)).shape == (2, 5)
        with pytest.raises(RuntimeError):
            m(torch.zeros(1, 3, size + 32, size + 32))


def test_fc_twin_differs_from_nin_only_in_head():
    nin, fc = create_model("nin-cifar10"), create_model("fc-cifar10", fc_width=64)
    assert [k for k in nin.state_dict() if k.startswith("features")] == [k for k in fc.state_dict() if k.startswith("features")]


def test_unknown_model_suggests_closest():
    with pytest.raises(UnknownModelError, match="did you mean 'nin-cifar10'"):
        create_model("nin-cifar")


@pytest.mark.parametrize(("name", "smallest"), [("nin-cifar10", 4), ("nin-imagenet", 39), ("nin-seed", 67), ("alexnet", 63)])
def test_too_small_input_names_smallest(name, smallest):
    assert smallest_input_size(name) == smallest
    with pytest.raises(InputSizeError, match=f"smallest it takes is {smallest}x{smallest}"):
        create_model(name, input_size=smallest - 1)
    create_model(name, input_size=smallest, **({"num_classes": 3} if name == "alexnet" else {}))


def test_paper_init_is_gaussian_with_zero_bias():
    m = create_model("nin-cifar10", init="paper")
    w = m.features[0][0].weight
    assert abs(float(w.detach().std()) - 0.05) < 0.005
    assert all(float(p.detach().abs().max()) == 0 for n, p in m.named_parameters() if n.endswith("bias"))


def test_weights_state_dict_and_checkpoint_forms(tmp_path):
    src = create_model("nin-cifar10")
    sd = src.state_dict()
    torch.save(sd, tmp_path / "plain.pt")
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, tmp_path / "ddp.pt")
    torch.save({"state_dict": sd, "meta": {"model": "nin-cifar10", "num_classes": 10}}, tmp_path / "ck.pt")
    for f in ("plain.pt", "ddp.pt", "ck.pt"):
        m = build_model("nin-cifar10", tmp_path / f)
        assert torch.equal(m.features[0][0].weight, src.features[0][0].weight)


def test_checkpoint_meta_fills_options(tmp_path):
    sd = create_model("nin-cifar10", num_classes=100).state_dict()
    torch.save({"state_dict": sd, "meta": {"model": "nin-cifar10", "num_classes": 100}}, tmp_path / "c100.pt")
    assert build_model("nin-cifar10", tmp_path / "c100.pt").meta.num_classes == 100
    _, meta = load_checkpoint(tmp_path / "c100.pt")
    assert meta.num_classes == 100 and meta.model == "nin-cifar10"


def test_weights_of_another_model_name_the_keys(tmp_path):
    torch.save(create_model("nin-seed").state_dict(), tmp_path / "seed.pt")
    with pytest.raises(WeightsError, match=r"do not fit nin-cifar10: shapes differ.*features\.0\.0\.weight"):
        build_model("nin-cifar10", tmp_path / "seed.pt")
    torch.save({"state_dict": create_model("nin-seed").state_dict(), "meta": {"model": "nin-seed"}}, tmp_path / "meta.pt")
    with pytest.raises(WeightsError, match="saved for model 'nin-seed'"):
        build_model("nin-cifar10", tmp_path / "meta.pt")


def test_bad_weights_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_model("nin-cifar10", tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        build_model("nin-cifar10", tmp_path / "junk.pt")


class _Obj:
    pass


def test_pickled_objects_are_not_unpickled(tmp_path):
    torch.save({"x": _Obj()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="pickled Python objects"):
        build_model("nin-cifar10", tmp_path / "evil.pt")
