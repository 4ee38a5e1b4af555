"""Actor: the robot as a Gymnasium env (robo_reward.envs.robot over ros_nodes.robot_link) driven by
the same actor loop as `rl train` (robo_reward.rl.actor_loop) on its own thread: the base is called
once per control step and reset at every episode start; commands pass the joint limit guard (as in
`rl train`); a command goes out only while the safety
monitor reports OK, an episode runs and every observation input is fresh; each executed step goes
to the learner as a transition. New weights from the learner are swapped in atomically; when the
learner goes quiet the actor keeps running on its current weights, reports the lost link, and picks
the learner up again as soon as it publishes (DDS rediscovers it)."""

from __future__ import annotations

import threading
import time

from std_msgs.msg import Float64MultiArray, String, UInt8MultiArray

from robo_reward.envs.limits import JointLimits
from robo_reward.envs.robot import LinkClosed, robot_env
from robo_reward.errors import RoboRewardError
from robo_reward.rl.actor_loop import run_episode
from robo_reward.rl.exploration import episode_horizon
from robo_reward.rl.transition import Transition
from robo_reward.runtime.actor import RuntimeActor, checkpoint_weights, robot_observation_shapes
from robo_reward.runtime.codecs import MessageError, encode_transition
from ros_nodes.common import (
    ACTOR_STATUS_TOPIC,
    HEARTBEAT_TOPIC,
    LATCHED,
    RELIABLE,
    StackNode,
    TRANSITIONS_TOPIC,
    WEIGHTS_TOPIC,
    declare,
    episode_defaults,
    hardware,
    json_msg,
    monotonic,
)
from ros_nodes.robot_link import RosRobotLink


class ActorNode(StackNode):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "actor"), **kwargs)
        from robo_reward.rl.policies import check_base_fits, load_policy

        self.config = cfg = hardware(self)
        base_dir = str(declare(self, "base_policy", ""))
        if not base_dir:
            raise RoboRewardError("actor: parameter base_policy (a policy directory) is required")
        self.explore = bool(declare(self, "explore", True))
        self.link_timeout = float(declare(self, "learner_timeout_s", 3.0))
        self.base, _ = load_policy(base_dir, str(declare(self, "device", "cpu")))
        check_base_fits(self.base, robot_observation_shapes(cfg), f"the robot {cfg.name}")
        self.actor = RuntimeActor(None, cfg.command.action_dim, seed=int(declare(self, "seed", 0)))
        residual_run = str(declare(self, "residual_run", ""))
        if residual_run:  # a trained run's residual from the start; a learner's newer weights still replace it
            self.actor.load_weights(checkpoint_weights(residual_run))
        self.link = RosRobotLink(self, cfg, str(declare(self, "success_source", "robot")) == "robot")
        self.env = robot_env(self.link, cfg.command.action_dim, int(declare(self, "max_episode_steps", episode_defaults(cfg)[0])),
                             JointLimits.from_hardware(cfg))
        self.last_link = float("-inf")
        self.error = ""
        self.pub_transition = self.create_publisher(Float64MultiArray, TRANSITIONS_TOPIC, RELIABLE)
        self.pub_status = self.create_publisher(String, ACTOR_STATUS_TOPIC, LATCHED)
        self.create_subscription(UInt8MultiArray, WEIGHTS_TOPIC, self.on_weights, LATCHED)
        self.create_subscription(String, HEARTBEAT_TOPIC, self.on_heartbeat, RELIABLE)
        self.create_timer(0.5, self.publish_status)
        self.thread = threading.Thread(target=self.act, name="actor-loop", daemon=True)
        self.thread.start()

    def on_weights(self, msg: UInt8MultiArray) -> None:
        self.last_link = monotonic()
        try:
            version = self.actor.load_weights(bytes(msg.data))
            self.get_logger().info(f"actor weights version {version} in use")
        except MessageError as exc:
            self.get_logger().warning(f"actor weights ignored: {exc}")

    def on_heartbeat(self, msg: String) -> None:
        self.last_link = monotonic()

    def act(self) -> None:
        """Episode after episode until the node stops. A base or residual that returns a malformed
        action ends the episode for the actor (nothing is sent); the next one starts when it can."""
        choose = lambda obs, base_action: self.actor.choose(obs, base_action, self.explore)  # noqa: E731
        while True:
            try:
                self.actor.start_episode(episode_horizon(self.env))
                run_episode(self.env, self.base, choose, self.send_transition,
                            learn_commanded=self.actor.learns_commanded_action)
                self.error = ""
                refused, self.env.unwrapped.refused = self.env.unwrapped.refused, None
                if refused is not None:
                    self.get_logger().warning("episode {}: step {} left out: {}".format(*refused))
            except LinkClosed:
                return
            except RoboRewardError as exc:
                self.error = str(exc)
                self.get_logger().error(f"no command: {exc}", throttle_duration_sec=2.0)
                time.sleep(self.config.control_period_s)

    def send_transition(self, t: Transition) -> None:
        self.pub_transition.publish(Float64MultiArray(data=encode_transition(t).tolist()))

    def publish_status(self) -> None:
        link = "ok" if monotonic() - self.last_link <= self.link_timeout else "lost"
        gate = self.error or self.link.gate()[1]
        self.pub_status.publish(json_msg({"weights_version": self.actor.version, "learner_link": link,
                                          "gate": gate, "explore": self.explore}))

    def destroy_node(self):
        self.link.close()
        self.thread.join(timeout=5.0)
        return super().destroy_node()


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(ActorNode, args)


if __name__ == "__main__":
    main()
