"""kairos plan --emit-ray-cluster: the Ray cluster YAML of a plan (no Ray needed, except
for the check against Ray's own cluster-config schema)."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner

from kairos.cli.main import cli
from kairos.serve.ray_cluster import node_type_name, ray_cluster_config, write_ray_cluster


def _workers(doc: dict) -> dict:
    return {k: v for k, v in doc["available_node_types"].items() if k != doc["head_node_type"]}


def test_ray_cluster_yaml_has_one_node_type_per_instance_type(tmp_path):
    path = tmp_path / "cluster.yaml"
    write_ray_cluster({"g4dn.xlarge": 2, "r5n.large": 9, "t3.xlarge": 0}, path, "rm2")
    doc = yaml.safe_load(path.read_text())
    workers = _workers(doc)
    assert set(workers) == {"kairos-g4dn-xlarge", "kairos-r5n-large"}  # a zero count rents nothing
    g, r = workers["kairos-g4dn-xlarge"], workers["kairos-r5n-large"]
    assert g["min_workers"] == g["max_workers"] == 2 and r["min_workers"] == r["max_workers"] == 9
    assert g["node_config"]["InstanceType"] == "g4dn.xlarge" and r["node_config"]["InstanceType"] == "r5n.large"
    assert g["resources"] == {"CPU": 4, "GPU": 1, "kairos/g4dn.xlarge": 1}
    assert r["resources"] == {"CPU": 2, "kairos/r5n.large": 1}
    assert doc["max_workers"] == 11 and doc["provider"]["type"] == "aws"
    head = doc["available_node_types"][doc["head_node_type"]]
    assert head["max_workers"] == 0 and not any(k.startswith("kairos/") for k in head["resources"])
    assert "--include-dashboard=false" in " ".join(doc["head_start_ray_commands"])
    assert all(
        "RAY_USAGE_STATS_ENABLED=0" in c
        for c in doc["head_start_ray_commands"][1:] + doc["worker_start_ray_commands"][1:]
    )


def test_ray_cluster_yaml_unknown_type_and_errors():
    doc = ray_cluster_config({"cpu-2t": 3})
    w = _workers(doc)[node_type_name("cpu-2t")]
    assert w["resources"] == {"kairos/cpu-2t": 1} and w["min_workers"] == 3
    with pytest.raises(ValueError):
        ray_cluster_config({"r5n.large": 0})


@pytest.mark.ray
def test_ray_cluster_yaml_valid_for_ray_schema(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    jsonschema = pytest.importorskip("jsonschema")
    with open(os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")) as f:
        schema = json.load(f)
    path = tmp_path / "cluster.yaml"
    write_ray_cluster({"g4dn.xlarge": 1, "r5n.large": 4, "c5n.2xlarge": 2}, path, "wnd")
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_plan_cli_emits_ray_cluster_matching_the_plan(tmp_path):
    plan_path, cluster_path = tmp_path / "plan.json", tmp_path / "cluster.yaml"
    r = CliRunner().invoke(
        cli,
        [
            "plan",
            "--model",
            "rm2",
            "--no-compare",
            "--evals",
            "0",
            "--emit",
            str(plan_path),
            "--emit-ray-cluster",
            str(cluster_path),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    plan = json.loads(plan_path.read_text())
    doc = yaml.safe_load(cluster_path.read_text())
    counts = {w["node_config"]["InstanceType"]: w["min_workers"] for w in _workers(doc).values()}
    assert counts == {t: k for t, k in plan["config"].items() if k > 0}
    for t, w in ((w["node_config"]["InstanceType"], w) for w in _workers(doc).values()):
        assert w["resources"][f"kairos/{t}"] == 1 and w["max_workers"] == w["min_workers"]
