"""Base policies, replay buffers, networks, the residual off-policy learner and the shared loop."""
