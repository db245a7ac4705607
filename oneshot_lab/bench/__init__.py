"""The benchmark suite: `python -m oneshot_lab.bench` (or `make bench`, `oneshot-lab bench`).

Sections (modules): training (fit vs a bare loop, masked steps), global_prune (vs torch.nn.utils.prune at
scale), second_order (curvature and second-order pruners vs one backward pass), inference (dense vs CSR vs
smaller layers), quality (a sweep spec summarised over seeds) and lab (wall time of notebooks, demo, tests).
`readme` regenerates the README's "Performance" section from the results.
"""
