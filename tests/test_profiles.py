"""Profiles: loading CSV / CSV.gz, the built-in catalogue, size buckets, sampling, errors."""

import gzip

import numpy as np
import pytest

from kairos.errors import KairosInputError
from kairos.profiles import builtin_catalogue, load_prices, load_profiles, parse_config


def write(path, text, gz=False):
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_latency_ms_profile(tmp_path):
    rows = ["model,instance,batch,rep,latency_ms"]
    for b, base in ((10, 1.0), (20, 2.0)):
        for r in range(5):
            rows.append(f"m,a,{b},{r},{base + r}")
            rows.append(f"m,b,{b},{r},{10 * base + r}")
    p = load_profiles(write(tmp_path / "p.csv", "\n".join(rows)))["m"]
    assert p.types == ("a", "b")
    assert p.batches.tolist() == [10, 20]
    # trimmed mean drops the single largest repetition: mean(1,2,3,4) = 2.5
    assert p.mean_ms[0, 0] == pytest.approx(2.5)
    assert p.quantile_ms(0.0)[1, 1] == pytest.approx(20.0)
    assert p.quantile_ms(1.0)[1, 1] == pytest.approx(24.0)


def test_infer_plus_load_gz(tmp_path):
    text = "model,instance,batch,infer_ms,load_ms\nm,a,10,1.5,0.5\nm,a,10,1.5,0.5\nm,a,10,1.5,0.5\n"
    p = load_profiles(write(tmp_path / "p.csv.gz", text, gz=True))["m"]
    assert p.mean_ms[0, 0] == pytest.approx(2.0)


def test_bucket_is_next_measured_size_up_and_beyond_is_an_error():
    p = builtin_catalogue().profile("rm2")
    idx = p.bucket_of([1, 10, 11, 995, 1000])
    assert p.batches[idx].tolist() == [10, 10, 20, 1000, 1000]
    with pytest.raises(KairosInputError, match="beyond the largest measured size 1000"):
        p.bucket_of([1001])


def test_builtin_catalogue_shape_and_values():
    cat = builtin_catalogue()
    assert sorted(cat.profiles) == ["dien", "mtwnd", "ncf", "rm2", "wnd"]
    assert cat.prices == {"c5n.2xlarge": 0.432, "g4dn.xlarge": 0.526, "r5n.large": 0.149, "t3.xlarge": 0.1664}
    p = cat.profile("rm2")
    assert p.types == ("c5n.2xlarge", "g4dn.xlarge", "r5n.large", "t3.xlarge")
    assert p.batches.tolist() == list(range(10, 1001, 10))
    g = p.type_index("g4dn.xlarge")
    r = p.type_index("r5n.large")
    # the GPU is the fastest at the largest size, and about 1.5x faster than r5n there
    assert p.mean_ms[g, -1] < p.mean_ms[r, -1]
    assert 1.3 < p.mean_ms[r, -1] / p.mean_ms[g, -1] < 1.8
    # quantiles are monotone and bracket the mean
    q = p.quantiles_ms
    assert np.all(np.diff(q, axis=2) >= -1e-9)
    assert np.all((q[:, :, 0] <= p.mean_ms + 1e-6) & (p.mean_ms <= q[:, :, -1] + 1e-6))


def test_sampling_follows_the_quantiles():
    p = builtin_catalogue().profile("dien")
    rng = np.random.default_rng(0)
    b = np.full(20000, 49)  # size 500
    s = p.sample_service_ms(b, [0, 1, 2, 3], rng)
    assert s.shape == (20000, 4)
    for t in range(4):
        assert np.median(s[:, t]) == pytest.approx(p.quantile_ms(0.5)[t, 49], rel=0.03)
        assert s[:, t].min() >= p.quantiles_ms[t, 49, 0] - 1e-9
        assert s[:, t].max() <= p.quantiles_ms[t, 49, -1] + 1e-9


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "empty profile"),
        ("model,instance,batch,latency_ms\n", "no rows"),
        ("model,instance,latency_ms\nm,a,1\n", "missing column"),
        ("model,instance,batch,foo\nm,a,10,1\n", "latency_ms column"),
        ("model,instance,batch,latency_ms\nm,a,10,abc\n", "must be a number"),
        ("model,instance,batch,latency_ms\nm,a,0,1\n", "positive integer"),
        ("model,instance,batch,latency_ms\nm,a,10,-1\n", "must be > 0"),
        ("model,instance,batch,latency_ms\nm,a,10,0\n", "must be > 0"),
        ("model,instance,batch,latency_ms\nm,a,10,1\nm,b,20,1\n", "no measurement"),
    ],
)
def test_malformed_profiles(tmp_path, text, match):
    with pytest.raises(KairosInputError, match=match):
        load_profiles(write(tmp_path / "bad.csv", text))


def test_missing_file():
    with pytest.raises(KairosInputError, match="not found"):
        load_profiles("/nonexistent/profile.csv")


def test_prices(tmp_path):
    p = load_prices(write(tmp_path / "p.csv", "instance,usd_per_hour\na, 0.5 \nb,1\n"))
    assert p == {"a": 0.5, "b": 1.0}
    with pytest.raises(KairosInputError, match="> 0"):
        load_prices(write(tmp_path / "q.csv", "instance,usd_per_hour\na,0\n"))


def test_parse_config():
    assert parse_config("g4dn.xlarge=2, r5n.large=9") == {"g4dn.xlarge": 2, "r5n.large": 9}
    assert parse_config("a=0,b=1") == {"b": 1}
    for bad, match in [
        ("", "empty"),
        ("a", "TYPE=COUNT"),
        ("a=x", "integer"),
        ("a=-1", ">= 0"),
        ("a=0", "no instances"),
        ("a=1,a=2", "twice"),
    ]:
        with pytest.raises(KairosInputError, match=match):
            parse_config(bad)
