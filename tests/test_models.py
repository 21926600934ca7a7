"""The five PyTorch models behind kairos.models.load_model: shapes, determinism, configs."""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kairos.errors import KairosInputError  # noqa: E402
from kairos.models import MODELS, load_model  # noqa: E402

pytestmark = pytest.mark.torch

SMALL = 2000  # embedding rows per table in these tests (the default cap is 100,000)
# trailing output shape per model (after the [size] axis)
OUT_SHAPE = {"rm2": (1,), "wnd": (1,), "mtwnd": (1, 128), "dien": (2,), "ncf": (64,)}


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_model_names():
    assert MODELS == ("rm2", "wnd", "mtwnd", "dien", "ncf")


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_and_range(name):
    m = load_model(name, seed=0, max_rows=SMALL)
    assert m.name == name and m.device == "cpu"
    rng = np.random.default_rng(3)
    for size in (1, 13):
        batch = m.make_batch(size, rng)
        assert all(t.device.type == "cpu" for t in batch.values())
        out = m.infer(m.to_device(batch))
        assert tuple(out.shape) == (size,) + OUT_SHAPE[name]
        assert not out.requires_grad
        assert torch.isfinite(out).all()
        if name in ("rm2", "wnd", "mtwnd"):  # sigmoid outputs
            assert ((out > 0) & (out < 1)).all()
        else:  # ReLU outputs
            assert (out >= 0).all()


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_outputs_other_seed_other_weights(name):
    a = load_model(name, seed=7, max_rows=SMALL)
    b = load_model(name, seed=7, max_rows=SMALL)
    c = load_model(name, seed=8, max_rows=SMALL)
    xa = a.make_batch(32, np.random.default_rng(5))
    xb = b.make_batch(32, np.random.default_rng(5))
    for k in xa:
        assert torch.equal(xa[k], xb[k])
    ya, yb, yc = a.infer(xa), b.infer(xb), c.infer(xa)
    assert torch.equal(ya, yb)
    pa = dict(a.module.named_parameters())
    pc = dict(c.module.named_parameters())
    assert pa.keys() == pc.keys()
    for key in pa:
        assert torch.equal(pa[key], dict(b.module.named_parameters())[key])
        assert not torch.equal(pa[key], pc[key]), key
    assert not torch.equal(ya, yc)


@pytest.mark.parametrize("name", MODELS)
def test_batch_indices_within_tables(name):
    m = load_model(name, seed=0, max_rows=SMALL)
    batch = m.make_batch(50, np.random.default_rng(0))
    idx = batch["sparse"]
    rows = torch.tensor(m.module.emb.rows).view(1, -1, 1)
    assert idx.dtype == torch.int64 and idx.shape[:2] == (50, len(m.module.emb.rows))
    assert (idx >= 0).all() and (idx < rows).all()
    assert idx.max() > SMALL // 2  # uniform over the table, not a corner of it


def test_deeprecsys_dimensions():
    """Layer widths follow the DeepRecSys configs; only table rows are capped."""
    from kairos.models.dien import DIEN
    from kairos.models.dlrm import DLRM
    from kairos.models.mtwnd import MultiTaskWideAndDeep
    from kairos.models.ncf import NCF
    from kairos.models.wnd import WideAndDeep

    rm2 = DLRM(max_rows=10)
    assert len(rm2.emb.rows) == 32 and rm2.emb.dim == 64 and rm2.lookups == 120
    assert rm2.top[0].in_features == 64 + 32 * 64 == 2112
    assert [layer.out_features for layer in rm2.top if isinstance(layer, torch.nn.Linear)] == [128, 64, 1]
    wnd = WideAndDeep(max_rows=10)
    assert len(wnd.emb.rows) == 27 and wnd.top[0].in_features == 512 + 27 * 32
    mt = MultiTaskWideAndDeep(max_rows=10)
    assert len(mt.emb.rows) == 43 and mt.top[0].in_features == 512 + 43 * 32
    dien = DIEN(max_rows=10)
    assert dien.rnn1.hidden_size == 64 and dien.top[0].in_features == 64 + 3 * 32
    ncf = NCF()
    assert ncf.emb.rows == [100_000, 100_000, 28_000, 28_000] and ncf.final[0].in_features == 128


def test_default_cap_and_env_override(monkeypatch):
    from kairos.models.dlrm import DLRM

    assert DLRM().emb.rows == [100_000] * 32  # capped from 500,000
    monkeypatch.setenv("KAIROS_MODEL_MAX_ROWS", "1234")
    m = load_model("wnd", seed=0)
    assert m.max_rows == 1234 and m.module.emb.rows == [1234] * 27


def test_bad_inputs():
    with pytest.raises(KairosInputError, match="unknown model"):
        load_model("resnet")
    m = load_model("ncf", max_rows=100)
    with pytest.raises(KairosInputError, match="batch size"):
        m.make_batch(0, np.random.default_rng(0))
    with pytest.raises(KairosInputError, match="device"):
        load_model("ncf", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(KairosInputError, match="CUDA is not available"):
            load_model("ncf", device="cuda")


def test_core_does_not_import_torch():
    code = (
        "import sys, kairos, kairos.models, kairos.profiles, kairos.profiles.profiler, "
        "kairos.cli.main, kairos.cli.profile, kairos.cli.simulate\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_local_type_settings():
    from kairos.models.registry import local_type_settings as f

    assert f("cpu-1t") == {"device": "cpu", "threads": 1}
    assert f("cpu-2t") == {"device": "cpu", "threads": 2}
    assert f("cuda") == {"device": "cuda"} and f("cuda:1") == {"device": "cuda:1"}
    assert f("gpu-h200") == {"device": "cuda"}
    assert f("r5n.large") == {} and f("cpu-0t") == {}
