"""A plan's configuration as a Ray cluster YAML (``kairos plan --emit-ray-cluster FILE``).

One Ray node type per instance type of the configuration, on AWS (the catalogue's
cloud): ``node_config.InstanceType`` is the type, ``min_workers = max_workers`` is its
count (the pool is rented as planned, not autoscaled), and ``resources`` give the
node its CPUs/GPUs and one unit of ``kairos/TYPE``, the custom resource that
``kairos serve --backend ray`` asks for when it places an instance's actor: one
instance per VM. A small head node type (no ``kairos/*`` resource) runs the gateway.
The result is ready for ``ray up`` after you set the region, SSH user and image.
"""

from __future__ import annotations

import re

from kairos.serve.ray_backend import resource_name

RAY_VERSION = "2.60.0"

#: what Ray needs to know of the AWS types of the built-in catalogue (vCPUs, GPUs)
AWS_SHAPES = {
    "c5n.2xlarge": {"CPU": 8},
    "g4dn.xlarge": {"CPU": 4, "GPU": 1},
    "r5n.large": {"CPU": 2},
    "t3.xlarge": {"CPU": 4},
    "m5.large": {"CPU": 2},
}

#: RayConfig of the cluster: task events capped, no metrics export
SYSTEM_CONFIG_JSON = '{"task_events_max_num_task_in_gcs": 10000, "enable_metrics_collection": false}'


def node_type_name(type_name: str) -> str:
    """A node type key for an instance type (``g4dn.xlarge`` -> ``kairos-g4dn-xlarge``)."""
    return "kairos-" + re.sub(r"[^A-Za-z0-9]+", "-", type_name).strip("-")


def ray_cluster_config(
    config: dict[str, int],
    model: str | None = None,
    cluster_name: str | None = None,
    region: str = "us-east-1",
    head_type: str = "m5.large",
    source_dir: str = ".",
) -> dict:
    """The Ray cluster config (a dict, dump it as YAML) that rents ``config`` on AWS.

    ``source_dir`` (a path on the machine that runs ``ray up``) is copied to every node
    and installed there with the ``serve`` and ``ray`` extras (nothing is fetched by
    Kairos at run time; pip installs the pinned dependencies when the node is set up).
    """
    config = {t: int(k) for t, k in config.items() if int(k) > 0}
    if not config:
        raise ValueError("the configuration has no instances")
    types = {
        "kairos-head": {
            "node_config": {"InstanceType": head_type},
            # the gateway runs here; no instance may be placed on the head
            "resources": {"CPU": AWS_SHAPES.get(head_type, {}).get("CPU", 2)},
            "min_workers": 0,
            "max_workers": 0,
        }
    }
    for t, k in config.items():
        key = node_type_name(t)
        if key in types:
            raise ValueError(f"two instance types map to the node type {key}")
        types[key] = {
            "node_config": {"InstanceType": t},
            "resources": {**AWS_SHAPES.get(t, {}), resource_name(t): 1},
            "min_workers": k,
            "max_workers": k,
        }
    name = cluster_name or ("kairos-" + (re.sub(r"[^A-Za-z0-9-]+", "-", model) if model else "pool"))
    ray_start = "RAY_USAGE_STATS_ENABLED=0 ray start"
    return {
        "cluster_name": name,
        "max_workers": sum(config.values()),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 60,
        "provider": {"type": "aws", "region": region, "cache_stopped_nodes": False},
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": types,
        "head_node_type": "kairos-head",
        "file_mounts": {"~/kairos": source_dir},
        "setup_commands": [
            f'python3 -m pip install -q "ray[default]=={RAY_VERSION}" "$HOME/kairos[serve,ray]"',
        ],
        "head_setup_commands": ["python3 -m pip install -q 'boto3>=1.4.8'"],  # the autoscaler's AWS client
        "head_start_ray_commands": [
            "ray stop",
            f"ulimit -n 65536; {ray_start} --head --port=6379 --autoscaling-config=~/ray_bootstrap_config.yaml "
            f"--include-dashboard=false --system-config='{SYSTEM_CONFIG_JSON}'",
        ],
        "worker_start_ray_commands": [
            "ray stop",
            f"ulimit -n 65536; {ray_start} --address=$RAY_HEAD_IP:6379",
        ],
    }


def write_ray_cluster(config: dict[str, int], path, model: str | None = None, **kw) -> dict:
    """Write :func:`ray_cluster_config` as YAML to ``path``; returns the dict."""
    import yaml

    doc = ray_cluster_config(config, model, **kw)
    header = (
        "# Ray cluster for a Kairos plan (kairos plan --emit-ray-cluster). Each instance of the plan is a\n"
        "# worker node of its type, offering one unit of the custom resource kairos/TYPE that\n"
        "# `kairos serve --backend ray --address auto` places that instance's actor with.\n"
        "# Check region, auth and the image (node_config.ImageId) before `ray up`.\n"
    )
    with open(path, "w") as f:
        f.write(header)
        yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=False, width=1000)
    return doc
