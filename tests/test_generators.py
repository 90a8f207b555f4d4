"""Seed 003's generators: shapes and ranges, condition encodings, gradients to the input, safe weight loading, the
official state-dict layouts at full width, and the config group."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from advdf.errors import CheckpointError, ConfigError
from advdf.generators import (
    ATTGAN_ATTRIBUTES,
    STGAN_DOMAINS,
    Generator,
    create_discriminator,
    create_generator,
    list_discriminators,
    list_generators,
    save_weights,
)
from advdf.utils.entry import CONF_DIR, register_resolvers

NAMES = ("attgan", "stargan", "stgan", "ugatit")
# Small versions at 32 px: the official shapes with narrow widths (and fewer blocks where the model has the knob).
SMALL = {"stargan": {"conv_dim": 8, "repeat_num": 2}, "attgan": {"enc_dim": 8, "dec_dim": 8},
         "stgan": {"enc_dim": 8, "dec_dim": 8, "stu_dim": 8}, "ugatit": {"ngf": 8, "n_blocks": 2}}
SMALL_D = {"stargan": {"conv_dim": 8, "repeat_num": 5}, "attgan": {"dim": 8, "fc_dim": 32, "n_layers": 4},
           "stgan": {"dim": 8, "fc_dim": 32, "n_layers": 4}, "ugatit": {"ndf": 8, "n_layers": 5}}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny networks: intra-op threads only add synchronization."""


def small(name: str, **kwargs) -> Generator:
    torch.manual_seed(0)
    return create_generator(name, image_size=32, **{**SMALL[name], **kwargs}).eval()


def images(n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def attributes(model: Generator, n: int = 2) -> torch.Tensor:
    return torch.randint(0, 2, (n, len(model.attributes)), generator=torch.Generator().manual_seed(2)).float()


def test_every_model_is_registered_with_its_discriminator():
    assert tuple(list_generators()) == NAMES
    assert tuple(list_discriminators()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_generators_keep_shape_and_range(name):
    model = small(name)
    x = images()
    for c in model.conditions(attributes(model)):
        y = model(x, c)
        assert y.shape == x.shape
        assert torch.isfinite(y).all() and y.abs().max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_the_attack_gradient_reaches_the_input(name):
    model = small(name)
    x = images()
    c = model.conditions(attributes(model))[-1]
    delta = torch.zeros_like(x, requires_grad=True)
    loss = (model(x + delta, c) - model(x, c).detach()).square().mean() + model(x + delta, c).mean()
    (grad,) = torch.autograd.grad(loss, delta)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_discriminators_give_their_heads(name):
    torch.manual_seed(0)
    disc = create_discriminator(name, image_size=32, **SMALL_D[name])
    out = disc(images())
    assert all(torch.isfinite(o).all() for o in out)
    if name == "stargan":
        assert out[0].shape == (2, 1, 1, 1) and out[1].shape == (2, 5)
    elif name in ("attgan", "stgan"):
        assert out[0].shape == (2, 1) and out[1].shape == (2, 13)
    else:
        assert out[0].shape == (2, 1, 2, 2) and out[1].shape == (2, 2) and out[2].shape == (2, 1, 3, 3)


def test_stargan_eval_mode_normalizes_like_the_official_test():
    model = small("stargan")
    x, c = images(), model.conditions(attributes(model))[3]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    y = model(x, c)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())   # no statistics updated
    assert torch.allclose(y, model.train()(x, c), atol=1e-6)   # the official test never calls eval()
    assert not torch.allclose(y, small("stargan", input_stats_in_eval=False)(x, c), atol=1e-3)


def test_ugatit_forward_full_returns_cam_logits_and_heatmap():
    model = small("ugatit")
    y, cam, heat = model.forward_full(images())
    assert y.shape == (2, 3, 32, 32) and cam.shape == (2, 2) and heat.shape == (2, 1, 8, 8)
    assert torch.equal(model(images(), None), y)
    assert model.conditions(torch.zeros(2, 0)) == [None] and model.domains == ("anime",)
    model.UpBlock2[3].rho.data.fill_(1.5)
    model.clip_rho_()
    assert model.UpBlock2[3].rho.max() == 1
    nested = small("ugatit", nested_variance=True)   # the other official (Ada)ILN variance: same weights
    nested.load_state_dict(model.state_dict())
    other = nested(images())
    assert torch.isfinite(other).all() and not torch.allclose(other, model(images()))


# --- conditions -----------------------------------------------------------------------------------------------
def test_stargan_sets_one_hair_colour_and_flips_the_rest():
    model = small("stargan")
    assert model.domains == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    src = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 1]])
    c = model.conditions(src)
    assert len(c) == 5
    assert c[0].tolist() == [[1, 0, 0, 1, 0], [1, 0, 0, 0, 1]]   # black hair; the others off
    assert c[1].tolist() == [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]]   # blond, already blond stays blond
    assert c[2].tolist() == [[0, 0, 1, 1, 0], [0, 0, 1, 0, 1]]
    assert c[3].tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 1, 1]]   # gender flipped
    assert c[4].tolist() == [[1, 0, 0, 1, 1], [0, 1, 0, 0, 0]]   # age flipped
    assert torch.equal(src, torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 1]]))   # the source is left alone


def test_attgan_encodes_the_target_at_half_and_the_edited_attribute_at_one():
    model = small("attgan")
    assert model.attributes == model.domains == ATTGAN_ATTRIBUTES
    src = torch.zeros(1, 13)
    src[0, ATTGAN_ATTRIBUTES.index("Black_Hair")] = 1
    src[0, ATTGAN_ATTRIBUTES.index("Bangs")] = 1
    src[0, ATTGAN_ATTRIBUTES.index("No_Beard")] = 1
    c = model.conditions(src)
    assert len(c) == 13
    for i, ci in enumerate(c):
        assert set(ci[0].abs().tolist()) <= {0.5, 1.0}
        assert ci[0, i].abs() == 1 and (ci[0].abs() == 1).sum() == 1
    blond = c[ATTGAN_ATTRIBUTES.index("Blond_Hair")][0]
    assert blond[ATTGAN_ATTRIBUTES.index("Blond_Hair")] == 1
    assert blond[ATTGAN_ATTRIBUTES.index("Black_Hair")] == -0.5   # exclusive hair colours
    bald = c[ATTGAN_ATTRIBUTES.index("Bald")][0]
    assert bald[ATTGAN_ATTRIBUTES.index("Bald")] == 1 and bald[ATTGAN_ATTRIBUTES.index("Bangs")] == -0.5
    mustache = c[ATTGAN_ATTRIBUTES.index("Mustache")][0]
    assert mustache[ATTGAN_ATTRIBUTES.index("No_Beard")] == -0.5   # AttGAN's beard pair
    unhair = c[ATTGAN_ATTRIBUTES.index("Black_Hair")][0]   # turning an attribute off changes nothing else
    assert unhair[ATTGAN_ATTRIBUTES.index("Black_Hair")] == -1
    assert (unhair.sign() == (src[0] * 2 - 1) * torch.tensor([-1.0 if n == "Black_Hair" else 1.0
                                                                for n in ATTGAN_ATTRIBUTES])).all()


def test_stgan_takes_the_difference_vector_on_its_five_domains():
    model = small("stgan")
    assert model.domains == STGAN_DOMAINS and model.attributes == ATTGAN_ATTRIBUTES
    src = attributes(model, 8)
    src[:, ATTGAN_ATTRIBUTES.index("Bald")] = 1
    c = model.conditions(src)
    assert len(c) == 5
    for name, ci in zip(STGAN_DOMAINS, c, strict=True):
        i = ATTGAN_ATTRIBUTES.index(name)
        assert torch.equal(ci[:, i], 1 - 2 * src[:, i])   # +-1 on the edited attribute
        others = ci.clone()
        others[:, i] = 0
        if name == "Bangs":   # turning bangs on turns bald off
            j = ATTGAN_ATTRIBUTES.index("Bald")
            assert torch.equal(others[:, j], -(1 - src[:, i]))
            others[:, j] = 0
        assert not others.any()
    no_beard = torch.zeros(1, 13)
    no_beard[0, ATTGAN_ATTRIBUTES.index("Mustache")] = 1
    c = model.condition(no_beard, STGAN_DOMAINS.index("No_Beard"))
    assert c[0, ATTGAN_ATTRIBUTES.index("Mustache")] == 0   # STGAN drops AttGAN's beard pair


def test_conditions_refuse_wrong_shapes_and_domains():
    model = small("stargan")
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        model.condition(torch.zeros(2, 4), 0)
    with pytest.raises(ConfigError, match="5 domains"):
        model.condition(torch.zeros(2, 5), 5)
    with pytest.raises(ValueError, match="condition of shape"):
        model(images(), torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="not among them"):
        create_generator("stgan", image_size=32, domains=["Smiling"], **SMALL["stgan"])


# --- configuration errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "kwargs", "match"), [
    ("stargan", {"image_size": 30}, "divisible by 4"),
    ("attgan", {"image_size": 48}, "divisible by 32"),
    ("stgan", {"image_size": 16}, "divisible by 32"),
    ("ugatit", {"image_size": 34}, "divisible by 4"),
    ("stargan", {"conv_dim": 0}, "positive integer conv_dim"),
    ("attgan", {"enc_layers": 4}, "enc_layers == dec_layers"),
    ("ugatit", {"ngf": 2.5}, "positive integer ngf"),
    ("nope", {}, "unknown generator 'nope'"),
])
def test_bad_options_are_one_line_config_errors(name, kwargs, match):
    with pytest.raises(ConfigError, match=match) as err:
        create_generator(name, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_discriminator_sizes_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="divisible by 64") as err:
        create_discriminator("stargan", image_size=32)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="'global' or 'local'"):
        create_discriminator("ugatit", image_size=32, kind="middle")


# --- weights -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_saved_weights_load_back_identically(name, tmp_path):
    model = small(name)
    with torch.no_grad():   # non-default norm statistics, so a missed buffer would show
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.running_mean is not None:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
    path = save_weights(model, tmp_path / "g.safetensors")
    torch.manual_seed(123)
    loaded = create_generator(name, image_size=32, checkpoint_path=path, **SMALL[name]).eval()
    x, c = images(), model.conditions(attributes(model))[0]
    assert torch.equal(model(x, c), loaded(x, c))


def test_official_and_lightning_layouts_load(tmp_path):
    attgan = small("attgan")
    disc = create_discriminator("attgan", image_size=32, **SMALL_D["attgan"])
    torch.save({"G": attgan.state_dict(), "D": disc.state_dict(), "optim_G": {"state": {}, "param_groups": []}},
               tmp_path / "a.pth")
    loaded = create_generator("attgan", image_size=32, checkpoint_path=tmp_path / "a.pth", **SMALL["attgan"])
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in attgan.state_dict().items())
    create_discriminator("attgan", image_size=32, checkpoint_path=tmp_path / "a.pth", **SMALL_D["attgan"])
    ugatit = small("ugatit")
    torch.save({"genA2B": ugatit.state_dict(), "genB2A": {}}, tmp_path / "u.pt")
    create_generator("ugatit", image_size=32, checkpoint_path=tmp_path / "u.pt", **SMALL["ugatit"])
    stargan = small("stargan")
    torch.save({"state_dict": {f"generator.{k}": v for k, v in stargan.state_dict().items()}
                | {"discriminator.x": torch.zeros(1)}, "epoch": 3}, tmp_path / "last.ckpt")
    create_generator("stargan", image_size=32, checkpoint_path=tmp_path / "last.ckpt", **SMALL["stargan"])
    with pytest.raises(CheckpointError, match="does not fit attgan: .*missing keys") as err:
        create_generator("attgan", image_size=32, checkpoint_path=tmp_path / "last.ckpt", **SMALL["attgan"])
    assert "\n" not in str(err.value)


def test_non_finite_weights_are_refused(tmp_path):
    model = small("stargan")
    state = model.state_dict()
    state["main.0.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="non-finite weights in 1 tensors \\(main.0.weight\\)"):
        create_generator("stargan", image_size=32, checkpoint_path=path, **SMALL["stargan"])
    with pytest.raises(CheckpointError, match="not found"):
        create_generator("stargan", image_size=32, checkpoint_path=tmp_path / "missing.pth")


# --- the official layouts at full width --------------------------------------------------------------------------
def _norm(prefix: str, c: int, running: bool = True) -> dict[str, tuple[int, ...]]:
    """Affine norm keys: weight and bias, and the running statistics of BatchNorm / tracked InstanceNorm."""
    keys = {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,)}
    if running:
        keys |= {f"{prefix}.running_mean": (c,), f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}
    return keys


def _sn(prefix: str, shape: tuple[int, ...], bias: bool = True) -> dict[str, tuple[int, ...]]:
    """torch.nn.utils.spectral_norm keys of a layer with weight ``shape``."""
    cols = 1
    for s in shape[1:]:
        cols *= s
    return {f"{prefix}.weight_orig": shape, f"{prefix}.weight_u": (shape[0],), f"{prefix}.weight_v": (cols,),
            **({f"{prefix}.bias": (shape[0],)} if bias else {})}


def _stargan_g() -> dict:
    """yunjey/stargan model.py Generator(conv_dim=64, c_dim=5, repeat_num=6)."""
    keys = {"main.0.weight": (64, 8, 7, 7), **_norm("main.1", 64), "main.3.weight": (128, 64, 4, 4),
            **_norm("main.4", 128), "main.6.weight": (256, 128, 4, 4), **_norm("main.7", 256)}
    for b in range(9, 15):
        keys |= {f"main.{b}.main.0.weight": (256, 256, 3, 3), **_norm(f"main.{b}.main.1", 256),
                 f"main.{b}.main.3.weight": (256, 256, 3, 3), **_norm(f"main.{b}.main.4", 256)}
    return keys | {"main.15.weight": (256, 128, 4, 4), **_norm("main.16", 128), "main.18.weight": (128, 64, 4, 4),
                   **_norm("main.19", 64), "main.21.weight": (3, 64, 7, 7)}


def _stargan_d() -> dict:
    """Discriminator(image_size=256, conv_dim=64, c_dim=5, repeat_num=6) (the released 256 px model)."""
    widths = [3, 64, 128, 256, 512, 1024, 2048]
    keys = {}
    for i in range(6):
        keys |= {f"main.{2 * i}.weight": (widths[i + 1], widths[i], 4, 4), f"main.{2 * i}.bias": (widths[i + 1],)}
    return keys | {"conv1.weight": (1, 2048, 3, 3), "conv2.weight": (5, 2048, 4, 4)}


def _attgan_g(inject: int = 0) -> dict:
    """elvisyjlin/AttGAN-PyTorch attgan.py Generator(64, 5, bn, lrelu, 64, 5, bn, relu, 13, shortcut 1, inject)."""
    enc = [3, 64, 128, 256, 512, 1024]
    keys = {}
    for i in range(5):
        keys |= {f"enc_layers.{i}.layers.0.weight": (enc[i + 1], enc[i], 4, 4), **_norm(f"enc_layers.{i}.layers.1",
                                                                                         enc[i + 1])}
    dec_in = [1024 + 13, 1024 + 512 + 13 * inject, 512, 256]
    dec_out = [1024, 512, 256, 128]
    for i in range(4):
        keys |= {f"dec_layers.{i}.layers.0.weight": (dec_in[i], dec_out[i], 4, 4),
                 **_norm(f"dec_layers.{i}.layers.1", dec_out[i])}
    return keys | {"dec_layers.4.layers.0.weight": (128, 3, 4, 4), "dec_layers.4.layers.0.bias": (3,)}


def _attgan_d(heads: tuple[str, str] = ("fc_adv", "fc_cls"), nested: bool = True) -> dict:
    """attgan.py Discriminators(64, instancenorm, lrelu, 1024, none, relu, 5, 128); STGAN's D with ``nested=False``
    (plain Sequential heads: Linear, LeakyReLU, Linear)."""
    widths = [3, 64, 128, 256, 512, 1024]
    keys = {}
    for i in range(5):
        keys |= {f"conv.{i}.layers.0.weight": (widths[i + 1], widths[i], 4, 4),
                 **_norm(f"conv.{i}.layers.1", widths[i + 1], running=False)}
    for head, n_out in zip(heads, (1, 13), strict=True):
        first, second = (f"{head}.0.layers.0", f"{head}.1.layers.0") if nested else (f"{head}.0", f"{head}.2")
        keys |= {f"{first}.weight": (1024, 1024 * 4 * 4), f"{first}.bias": (1024,),
                 f"{second}.weight": (n_out, 1024), f"{second}.bias": (n_out,)}
    return keys


def _stgan_g() -> dict:
    """csmliu/STGAN models.py Genc/Gstu/Gdec at train.py's defaults, in this port's names (PyTorch shapes)."""
    keys = {k: v for k, v in _attgan_g().items() if k.startswith("enc_layers")}
    stu_state = [1024 + 13, 512 + 13, 256 + 13, 128 + 13]
    stu_out = [512, 256, 128, 64]
    for i in range(4):
        d = stu_out[i]
        keys |= {f"stu.{i}.upsample.weight": (stu_state[i], d, 4, 4), f"stu.{i}.upsample.bias": (d,)}
        for gate in ("reset_gate", "update_gate", "info"):
            keys |= {f"stu.{i}.{gate}.weight": (d, 2 * d, 3, 3), f"stu.{i}.{gate}.bias": (d,)}
    dec_in = [1024 + 13, 1024 + 512 + 13, 512 + 256 + 13, 256 + 128 + 13]
    dec_out = [1024, 512, 256, 128]
    for i in range(4):
        keys |= {f"dec_layers.{i}.layers.0.weight": (dec_in[i], dec_out[i], 4, 4),
                 **_norm(f"dec_layers.{i}.layers.1", dec_out[i])}
    return keys | {"dec_layers.4.layers.0.weight": (128 + 64 + 13, 3, 4, 4), "dec_layers.4.layers.0.bias": (3,)}


def _ugatit_g() -> dict:
    """znxlwm/UGATIT-pytorch networks.py ResnetGenerator(3, 3, ngf=64, n_blocks=4, img_size=256, light=False)."""
    keys = {"DownBlock.1.weight": (64, 3, 7, 7), "DownBlock.5.weight": (128, 64, 3, 3),
            "DownBlock.9.weight": (256, 128, 3, 3)}
    for b in range(12, 16):
        keys |= {f"DownBlock.{b}.conv_block.1.weight": (256, 256, 3, 3),
                 f"DownBlock.{b}.conv_block.5.weight": (256, 256, 3, 3)}
    keys |= {"gap_fc.weight": (1, 256), "gmp_fc.weight": (1, 256), "conv1x1.weight": (256, 512, 1, 1),
             "conv1x1.bias": (256,), "FC.0.weight": (256, 64 * 64 * 256), "FC.2.weight": (256, 256),
             "gamma.weight": (256, 256), "beta.weight": (256, 256)}
    for b in range(1, 5):
        keys |= {f"UpBlock1_{b}.conv1.weight": (256, 256, 3, 3), f"UpBlock1_{b}.norm1.rho": (1, 256, 1, 1),
                 f"UpBlock1_{b}.conv2.weight": (256, 256, 3, 3), f"UpBlock1_{b}.norm2.rho": (1, 256, 1, 1)}
    for idx, c_in, c_out in ((2, 256, 128), (7, 128, 64)):
        keys |= {f"UpBlock2.{idx}.weight": (c_out, c_in, 3, 3),
                 **{f"UpBlock2.{idx + 1}.{p}": (1, c_out, 1, 1) for p in ("rho", "gamma", "beta")}}
    return keys | {"UpBlock2.11.weight": (3, 64, 7, 7)}


def _ugatit_d(n_layers: int) -> dict:
    """networks.py Discriminator(3, ndf=64, n_layers): 7 for disGA / disGB, 5 for disLA / disLB."""
    widths = [3] + [64 * 2**i for i in range(n_layers - 1)]
    keys = {}
    for i in range(n_layers - 1):
        keys |= _sn(f"model.{3 * i + 1}", (widths[i + 1], widths[i], 4, 4))
    dim = widths[-1]
    return keys | _sn("gap_fc", (1, dim), bias=False) | _sn("gmp_fc", (1, dim), bias=False) | {
        "conv1x1.weight": (dim, 2 * dim, 1, 1), "conv1x1.bias": (dim,)} | _sn("conv", (1, dim, 4, 4), bias=False)


@pytest.mark.parametrize(("build", "expected"), [
    (lambda: create_generator("stargan"), _stargan_g()),
    (lambda: create_discriminator("stargan", image_size=256), _stargan_d()),
    (lambda: create_generator("attgan"), _attgan_g()),
    (lambda: create_generator("attgan", inject_layers=1), _attgan_g(inject=1)),
    (lambda: create_discriminator("attgan"), _attgan_d()),
    (lambda: create_generator("stgan"), _stgan_g()),
    (lambda: create_discriminator("stgan"), _attgan_d(("fc_adv", "fc_att"), nested=False)),
    (lambda: create_generator("ugatit"), _ugatit_g()),
    (lambda: create_discriminator("ugatit", kind="global"), _ugatit_d(7)),
    (lambda: create_discriminator("ugatit", kind="local"), _ugatit_d(5)),
], ids=["stargan", "stargan_d256", "attgan", "attgan_inject1", "attgan_d", "stgan", "stgan_d", "ugatit",
        "ugatit_d_global", "ugatit_d_local"])
def test_full_width_state_dicts_are_the_official_ones(build, expected):
    with torch.device("meta"):   # shapes only: U-GAT-IT's FC alone would take a gigabyte
        state = build().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


# --- the config group ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_generator_configs_compose_and_build(name):
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="generators"):
        cfg = compose("train", overrides=[f"+generator={name}"])
    with torch.device("meta"):
        model = instantiate(cfg.generator)
    assert isinstance(model, Generator) and model.name == cfg.generator.name == name
    assert model.image_size == cfg.generator.image_size
    assert list(model.attributes) == list(cfg.generator.attributes)
