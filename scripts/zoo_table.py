"""Print the shipped-classifier table of docs/benchmarks.md from the cards in src/advshield/zoo.

    python scripts/zoo_table.py
"""

from advshield.zoo import list_checkpoints

print("| dataset | model | parameters | test accuracy | best epoch / epochs | training time | trained on |")
print("|---|---|---|---|---|---|---|")
for e in list_checkpoints():
    c = e.card
    if "test_accuracy" not in c or c.get("adversarial") or c.get("recipe", {}).get("adversarial"):
        continue  # restorers and detectors have no test accuracy; the robust models have their own page
    args = ", ".join(f"{k} {'/'.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in sorted(c.get("arch_kwargs", {}).items()))
    notes = ", ".join(filter(None, [args, "float16" if c.get("storage_dtype") == "float16" else ""]))
    where = c.get("gpu") or ("2-core CPU" if c.get("device", "cpu") == "cpu" else c["device"])
    print(f"| {e.dataset} | `{e.name}`{f' ({notes})' if notes else ''} | {c['n_params']:,} | "
          f"{100 * c['test_accuracy']:.2f} % | {c['best_epoch']} / {c['epochs']} | {c['train_time_s'] / 60:.1f} min | "
          f"{where} |")
