"""Training driven through the API, stopped after a number of checkpoints (to leave a resumable file behind)."""

from landscape import store
from landscape.experiments import train
from landscape.tasks import get_task


def train_until(out, cfg, checkpoints: int) -> list[str]:
    """Train ``cfg``'s sweep into ``out`` as ``landscape train`` does, stopping once ``checkpoints`` checkpoints are
    written (plus the one written at the stop); returns the member names."""
    task = get_task(cfg.task, cfg.task_options)
    cfg.task_options = task.options
    plan = train.make_plan(cfg, task)
    store.prepare_trajectories(out, cfg, plan)
    write, calls = train.saver(out, plan, plan.members), []

    def save(st, log):
        calls.append(st.step)
        write(st, log)

    train.run(plan, plan.members, train.fresh_state(plan, plan.members), on_checkpoint=save,
              should_stop=lambda: len(calls) >= checkpoints)
    return [m.name for m in plan.members]
