"""Real recommendation models (PyTorch) for profiling and for the gateway's torch workers.

The five DeepRecSys-class models the Kairos paper serves: ``rm2`` (DLRM RM2),
``wnd`` (Wide & Deep), ``mtwnd`` (multi-task Wide & Deep), ``dien`` (Deep Interest
Evolution Network) and ``ncf`` (Neural Collaborative Filtering), one module each,
with deterministic random weights (nothing is downloaded).

    from kairos.models import MODELS, load_model
    m = load_model("rm2", seed=0, device="cpu")
    batch = m.make_batch(100, numpy.random.default_rng(1))   # the "load" step (CPU)
    out = m.infer(m.to_device(batch))                        # tensor [100, ...]

PyTorch is an optional extra (``pip install 'kairos-serve[models]'``): importing this
package does not import torch; :func:`load_model` does.
"""

from kairos.models.registry import MODELS, load_model

__all__ = ["MODELS", "load_model"]
