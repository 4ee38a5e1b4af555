# Two commands do all set-up on a fresh machine: `make demo` and `make test` (see README).
SHELL := /bin/bash
RUN ?= runs/demo
TASK ?= lift
ROBOT ?= Panda
DEMOS ?= 20
NOISE ?= 0.5
# 24k env steps: three clean-clone runs of this configuration scored 92 / 89 / 92% (docs/BENCHMARKS.md,
# "`make demo`"); 18k of the Lift plan's lr 3e-6 arm, tried for time, scored 82 / 72%
RL_STEPS ?= 24000
# in-training evaluations for the plot, 10 episodes each (fewer points: less of the 20-minute budget)
EVAL_EVERY ?= 6000
EVAL_EPISODES ?= 100
# `eval --seed`: the final evaluations run on seeds 2,000,000 + DEMOS on, never used in training or
# tuning (`demos collect` starts its episodes from seeds 2,000,000 ... 2,000,000 + DEMOS - 1)
EVAL_SEED ?= $(shell expr 1000000 + $(DEMOS))
# ResFiT's update-to-data ratio is 4; two CPU cores afford 1 (see docs/BENCHMARKS.md)
# The residual's bound per action dimension: a Panda's arm 0.2, its gripper the whole range (the Lift
# table's best arm at 24k steps, docs/BENCHMARKS.md); another robot needs its own, e.g.
# `make demo ROBOT=GR1 BOUND=0.1`
BOUND ?= [0.2,0.2,0.2,0.2,0.2,0.2,1.0]
# The base predicts this many actions per state and executes their temporal ensemble (ACT's): a Markov
# base (CHUNK=1) stalls where a demonstrator paused (docs/BENCHMARKS.md, "A base with action chunks")
CHUNK ?= 8
# On the chunked base the residual learns at ResFiT's actor lr 1e-6 (1e-5 collapsed PickPlaceCan's residual
# for thousands of steps; docs/BENCHMARKS.md, "A base with action chunks")
RL_SET ?= --set utd_ratio=1 --set actor_lr=1e-6 --set critic_lr=3e-4 --set 'residual_scale=$(BOUND)'
RR = .venv/bin/robo-reward

.PHONY: install demo test bench clean
install:
	@bash scripts/bootstrap.sh >/dev/null

# The main job: noisy scripted demos -> behaviour-cloned base -> residual RL from sparse reward -> evaluation.
demo: install
	$(RR) demos collect --task $(TASK) --robot $(ROBOT) --episodes $(DEMOS) --noise $(NOISE) --out $(RUN)/demos --overwrite
	$(RR) base train --dataset $(RUN)/demos --chunk $(CHUNK) --out $(RUN)/base --overwrite
	$(RR) eval --policy $(RUN)/base --episodes $(EVAL_EPISODES) --seed $(EVAL_SEED) --videos 2 --out $(RUN)/eval_base --overwrite
	$(RR) rl train --base $(RUN)/base --dataset $(RUN)/demos --steps $(RL_STEPS) $(RL_SET) --eval-every $(EVAL_EVERY) --eval-episodes 10 --out $(RUN)/rl --overwrite
	$(RR) eval --policy $(RUN)/rl --episodes $(EVAL_EPISODES) --seed $(EVAL_SEED) --videos 3 --out $(RUN)/eval_rl --overwrite --compare $(RUN)/eval_base

test: install
	.venv/bin/python -m pytest -q tests

clean:
	rm -rf runs .pytest_cache
