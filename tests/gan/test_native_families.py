"""Our safetensors format keeps the generator's family: a StyleGAN3 comes back a StyleGAN3.

The StyleGAN3 fixtures are the parity files made by NVIDIA's code (tests/data/PARITY.md), so
the generator saved here is one `load_generator` really returns.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import DATA, make_generator
from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.export import load_session, save_session
from draggan_widget.gan import load_generator, save_generator
from draggan_widget.gan.formats.native import FORMAT_KEY, read_metadata
from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.gan.stylegan3 import Generator as StyleGAN3Generator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["sg3_t_32", "sg3_r_32"])
def sg3(request) -> StyleGAN3Generator:
    return load_generator(DATA / f"{request.param}.pkl")


def test_a_stylegan3_saved_and_loaded_draws_the_same_image(sg3, tmp_path):
    path = save_generator(sg3, tmp_path / "x.safetensors")
    assert read_metadata(path)[FORMAT_KEY] == "stylegan3-generator/1"
    loaded = load_generator(path)
    assert isinstance(loaded, StyleGAN3Generator) and loaded.config_name == sg3.config_name
    assert loaded.init_kwargs == sg3.init_kwargs
    for key, value in sg3.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    ws = sg3.mapping(torch.randn(2, sg3.z_dim, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(loaded.synthesis(ws), sg3.synthesis(ws))


@pytest.mark.parametrize("square", [True, False], ids=["square", "portrait"])
def test_a_stylegan2_is_still_saved_as_before(square, tmp_path):
    G = make_generator(square=square)
    path = save_generator(G, tmp_path / "x.safetensors")
    assert read_metadata(path)[FORMAT_KEY] == "stylegan2-generator/1"  # older versions read it
    loaded = load_generator(path)
    assert type(loaded) is Generator and (loaded.img_height, loaded.img_width) == (
        G.img_height,
        G.img_width,
    )


def test_saving_a_module_that_is_not_our_generator_is_refused(tmp_path):
    with pytest.raises(TypeError, match="load_generator first"):
        save_generator(nn.Linear(2, 2), tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())


def test_a_file_of_an_unknown_family_says_so(tmp_path):
    path = save_generator(make_generator(), tmp_path / "x.safetensors")
    data = path.read_bytes().replace(b"stylegan2-generator/1", b"stylegan9-generator/1")
    path.write_bytes(data)
    with pytest.raises(ValueError, match="stylegan9-generator/1"):
        load_generator(path)


def test_a_session_with_an_embedded_stylegan3_loads_without_its_generator(tmp_path):
    G = load_generator(DATA / "sg3_t_32.pkl")
    s = DragSession(G, seed=1, config=DragConfig(), device="cpu")
    s.set_points([(12.0, 16.0)], [(18.0, 16.0)])
    s.run(2)
    out = save_session(s, tmp_path / "edit", generator="embed")
    t = load_session(out, device="cpu")
    assert isinstance(t.G, StyleGAN3Generator) and t.G.config_name == "T"
    assert t.handles == s.handles and t.step_count == 2
    assert (t.image() == s.image()).all()
