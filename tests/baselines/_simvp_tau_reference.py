"""Reference runner for tests/test_simvp_tau.py (not a test module; run by another interpreter).

Runs OpenSTL's own SimVP_Model (IncepU and tau) and the original A4Bio SimVP on weights and inputs written by
the test, and writes their outputs back. It needs an interpreter with timm (OpenSTL's modules import it);
OpenSTL's Lightning-based methods are not importable there, so the rollout (``SimVP.forward``) and the TAU
regulariser (``TAU.diff_div_reg``) are compiled straight from OpenSTL's method files with ``ast``, i.e. the
reference code itself is what runs.

usage: python _simvp_tau_reference.py IN.pt OUT.pt OPENSTL_ROOT SIMVP_ROOT
"""

import ast
import sys
import types
from types import SimpleNamespace


def _method(path, class_name, method_name, namespace):
    with open(path) as fh:
        tree = ast.parse(fh.read(), filename=path)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method_name:
                    exec(compile(ast.Module(body=[item], type_ignores=[]), path, "exec"), namespace)  # noqa: S102 (OpenSTL's own code)
                    return namespace[method_name]
    raise LookupError(f"{class_name}.{method_name} not found in {path}")


def main(in_path, out_path, openstl_root, simvp_root):
    sys.path.insert(0, openstl_root)
    stub = types.ModuleType("openstl.utils")  # only MMVP needs it; the real one pulls in optional packages
    for name in ("build_similarity_matrix", "sim_matrix_interpolate", "sim_matrix_postprocess", "cum_multiply"):
        setattr(stub, name, None)
    sys.modules["openstl.utils"] = stub
    import torch
    from openstl.models import SimVP_Model

    torch.set_num_threads(1)
    ns = {"torch": torch, "F": torch.nn.functional}
    rollout = _method(f"{openstl_root}/openstl/methods/simvp.py", "SimVP", "forward", ns)
    ddr = _method(f"{openstl_root}/openstl/methods/tau.py", "TAU", "diff_div_reg", ns)

    cases = torch.load(in_path)
    results = []
    for case in cases:
        if case["impl"] == "a4bio":
            sys.path.insert(0, simvp_root)
            from model import SimVP as A4BioSimVP
            net = A4BioSimVP(**case["kwargs"])
        else:
            net = SimVP_Model(**case["kwargs"])
        net.load_state_dict(case["state_dict"], strict=True)
        if case["zero_drop_path"]:
            for m in net.modules():
                if hasattr(m, "drop_prob"):
                    m.drop_prob = 0.0
        net.train(case["train"])
        method = SimpleNamespace(model=net, hparams=SimpleNamespace(pre_seq_length=case["cond"].shape[1],
                                                                     aft_seq_length=case["horizon"]))
        out = {"keys": [(k, tuple(v.shape)) for k, v in net.state_dict().items()]}
        with torch.set_grad_enabled(case["train"]):
            pred = rollout(method, case["cond"])
        out["pred"] = pred.detach()
        if case["train"]:
            loss = torch.nn.MSELoss()(pred, case["target"])
            if case["alpha"]:
                loss = loss + case["alpha"] * ddr(None, pred, case["target"])
            loss.backward()
            out["loss"] = loss.detach()
            out["grads"] = {k: p.grad.detach().clone() for k, p in net.named_parameters() if p.grad is not None}
            out["state_after"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        results.append(out)
    torch.save(results, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:5])
