"""The benchmark suite: `python -m oneshot_lab.bench` (or `make bench`, `oneshot-lab bench`).

Sections (modules): training (fit vs a bare loop, masked steps), global_prune (vs torch.nn.utils.prune at
scale), second_order (curvature and second-order pruners vs one backward pass), inference (dense vs CSR vs
smaller layers); only when named: curvature_cost (an exact curvature diagonal by BackPACK vs one HVP per
parameter), explorer_slider (one slider move of the explorer), rejection_time (bad input refused by a fresh
`oneshot-lab`), quality (a sweep spec summarised over seeds) and lab (wall time of notebooks, demo, tests).
`readme` regenerates the generated blocks of the README and docs/ (the "Performance" section among them).

Experiments that write run records, run as modules: `python -m oneshot_lab.bench.lottery_tickets` (IMP and its
controls over seeds) and `python -m oneshot_lab.bench.obd_vs_magnitude` (one-shot accuracy per criterion).
"""
