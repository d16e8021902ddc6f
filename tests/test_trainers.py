"""jrft_utils.trainers: GRPO's KL reference is the checkpoint it starts from, and a run says where its time
went (the trainers' other paths run in the finetuning tests and the notebook smoke tests)."""

from transformers import TrainerCallback

from jrft_utils import finetuning, jigsaw, pretraining, profiles, template, trainers


def test_the_kl_anchor_is_the_checkpoint_grpo_starts_from(tmp_path, monkeypatch):
    """With beta > 0 GRPO rebuilds its reference model from the starting checkpoint's path: at the first
    step the policy is still that checkpoint, so the logged KL is zero (a reference built any other way,
    e.g. from random weights, would be far from it), and it grows once the policy moves (a reward that
    differs within every group: the completion's length)."""
    class KLLog(TrainerCallback):
        def __init__(self):
            self.kl = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "kl" in logs:
                self.kl.append(logs["kl"])

    def length_reward(completions, **kwargs):
        return [float(len(template.to_text(c))) for c in completions]

    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))
    config = profiles.resolve("smoke")
    pretraining.pretrain(config, progress=False)
    puzzles = finetuning.jigsaw_splits(config)["train"]
    log = KLLog()
    cfg = config.with_knobs("rft", steps=3, beta=0.2, learning_rate=1e-2)["rft"]
    metrics = trainers.train("rft", config.base_dir, jigsaw.to_grpo(puzzles), cfg, tmp_path / "rft", 0,
                             save_model=False, callbacks=[log], reward_funcs=[length_reward])
    assert len(log.kl) == 3 and log.kl[0] == 0.0 and log.kl[-1] > 0.0
    # where the run's time went, from TRL's own profiling: every part measured, together the whole run
    parts = metrics["time_s"]
    assert set(parts) == {"evaluation", "sampling", "rewards_and_reference", "forward_and_loss", "rest"}
    assert parts["sampling"] > 0 and parts["forward_and_loss"] > 0 and parts["evaluation"] == 0
    assert abs(sum(parts.values()) - metrics["train_time_s"]) < 0.05
