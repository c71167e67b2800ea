"""The ensemble and everything a step needs: K copies of one model as one batched computation.

``ensemble``: the batched model (engines ``mlp``, ``vmap``, ``loop``) over one flat tensor ``theta: [M, P]``;
``mlp``: the hand-batched MLP kernel; ``worker``: the model, device, data and minibatch streams every run shares;
``sphere``: the norm constraint; ``optim``: the optimizers built from pure pieces; ``fused`` and ``whole_step``:
the same steps compiled; ``allocator``: the process's freed-memory setting; ``footprint``: what a run will hold
in memory, checked before it starts.

May import: ``landscape.tasks``, ``landscape.config`` and the base modules (``errors``, ``plain``, ``status``);
nothing here reads or writes files.
"""
