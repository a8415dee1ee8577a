"""Throughput and strength of advshield's attacks against foolbox 3 and ART, same model, data and parameters.

    pip install -e ".[bench]" && python benchmarks/attacks.py [--n 1000] [--n-cw 200] [--out docs/benchmark-attacks.md]

Target: the zoo MNIST A-net; data: the first N MNIST test images (the embedded sample, or --data-root).
Success counts only images the model classified correctly; norms are medians over successful images.
Each library runs the same attack parameters; rows marked "early exit" let finished images leave the
batch (foolbox and ART have no such option). CW uses a reduced budget (5 binary steps x 200 iterations,
Adam step 0.05) so the three libraries finish on a CPU; the acceptance run below uses the same.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from advshield.attacks import FGSM, PGD, CarliniWagnerL2, L2DeepFool, SpatialAttack
from advshield.data import load_dataset
from advshield.zoo import load_pretrained


def ours(attack, model, x, y):
    r = attack(model, x, y)
    s = r.summary()
    return s["seconds"], s["success_rate"], s["median_l2"], s["median_linf"]


def summarise(model, x, y, adv, seconds):
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        fooled = model(adv).argmax(1) != y
    ok = correct & fooled
    d = (adv - x).flatten(1)
    rate = float(ok.sum() / correct.sum())
    med = lambda t: float(t[ok].median()) if ok.any() else float("nan")  # noqa: E731
    return seconds, rate, med(d.norm(dim=1)), med(d.abs().amax(1))


def foolbox_run(attack, fmodel, model, x, y, eps):
    t0 = time.perf_counter()
    _, adv, _ = attack(fmodel, x, y, epsilons=eps)
    return summarise(model, x, y, adv, time.perf_counter() - t0)


def art_run(attack, model, x, y):
    t0 = time.perf_counter()
    adv = torch.from_numpy(attack.generate(x=x.numpy()))
    return summarise(model, x, y, adv, time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--n-cw", type=int, default=200)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--skip", default="", help="comma-separated libraries to skip: foolbox,art")
    ap.add_argument("--only", default="", help="comma-separated row prefixes to run, e.g. CW,Spatial")
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = load_pretrained("a-net", "mnist")[0]
    x_all, y_all = load_dataset("mnist", "test", args.data_root).tensors(slice(0, args.n))
    skip = set(args.skip.split(","))
    import foolbox as fb
    from art.attacks.evasion import CarliniL2Method, DeepFool, FastGradientMethod, ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    amodel = PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), (1, 28, 28), 10, clip_values=(0.0, 1.0))
    bs = args.batch_size
    cw = dict(binary_search_steps=5, steps=200, stepsize=0.05)
    n_cw = min(args.n_cw, args.n)
    rows = [
        ("FGSM eps=0.3", args.n, lambda x, y: ours(FGSM(0.3), model, x, y),
         lambda x, y: foolbox_run(fb.attacks.FGSM(), fmodel, model, x, y, 0.3),
         lambda x, y: art_run(FastGradientMethod(amodel, eps=0.3, batch_size=bs), model, x, y)),
        ("PGD-40 eps=0.3", args.n, lambda x, y: ours(PGD(0.3, steps=40), model, x, y),
         lambda x, y: foolbox_run(fb.attacks.LinfPGD(steps=40, rel_stepsize=0.01 / 0.3), fmodel, model, x, y, 0.3),
         lambda x, y: art_run(ProjectedGradientDescentPyTorch(amodel, eps=0.3, eps_step=0.01, max_iter=40,
                                                              batch_size=bs, verbose=False), model, x, y)),
        ("PGD-40 eps=0.3, early exit", args.n, lambda x, y: ours(PGD(0.3, steps=40, early_stop=True), model, x, y),
         None, None),
        ("DeepFool L2 (50 steps, 10 cand.)", args.n, lambda x, y: ours(L2DeepFool(), model, x, y),
         lambda x, y: foolbox_run(fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02), fmodel,
                                  model, x, y, None),
         lambda x, y: art_run(DeepFool(amodel, max_iter=50, epsilon=0.02, nb_grads=10, batch_size=bs,
                                       verbose=False), model, x, y)),
        ("CW-L2 (5 x 200, step 0.05)", n_cw, lambda x, y: ours(CarliniWagnerL2(**cw), model, x, y),
         lambda x, y: foolbox_run(fb.attacks.L2CarliniWagnerAttack(**cw), fmodel, model, x, y, None),
         lambda x, y: art_run(CarliniL2Method(amodel, binary_search_steps=5, max_iter=200, learning_rate=0.05,
                                              initial_const=1e-3, batch_size=bs, verbose=False), model, x, y)),
        ("Spatial (30 deg, 3 px, 5x5x5)", args.n, lambda x, y: ours(SpatialAttack(), model, x, y),
         lambda x, y: foolbox_run(fb.attacks.SpatialAttack(), fmodel, model, x, y, None), None),
    ]
    lines = [f"A-net (zoo), MNIST test images, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
             f"{platform.processor() or platform.machine()}", "",
             "| attack | n | library | images/s | success | median L2 | median L-inf | speed-up vs foolbox |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    only = [o.strip().lower() for o in args.only.split(",") if o.strip()]
    for title, n, run_ours, run_fb, run_art in rows:
        if only and not any(title.lower().startswith(o) for o in only):
            continue
        x, y = x_all[:n], y_all[:n]
        results = {"advshield": run_ours(x, y)}
        if run_fb is not None and "foolbox" not in skip:
            results["foolbox"] = run_fb(x, y)
        if run_art is not None and "art" not in skip:
            results["ART"] = run_art(x, y)
        fb_speed = n / results["foolbox"][0] if "foolbox" in results else None
        for lib, (sec, rate, l2, linf) in results.items():
            speed = n / sec
            rel = f"{speed / fb_speed:.1f}x" if fb_speed else "-"
            line = (f"| {title} | {n} | {lib} | {speed:,.0f} | {100 * rate:.1f} % | {l2:.3f} | {linf:.3f} | {rel} |")
            lines.append(line)
            print(line, flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
