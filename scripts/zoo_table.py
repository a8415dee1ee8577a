"""Print the shipped-checkpoint table of the README from the cards in src/advshield/zoo."""

from advshield.zoo import list_checkpoints

print("| dataset | model | parameters | test accuracy | best epoch / epochs | training time (2-core CPU) |")
print("|---|---|---|---|---|---|")
for e in list_checkpoints():
    c = e.card
    print(f"| {e.dataset} | `{e.name}` | {c['n_params']:,} | {100 * c['test_accuracy']:.2f} % | "
          f"{c['best_epoch']} / {c['epochs']} | {c['train_time_s'] / 60:.1f} min |")
