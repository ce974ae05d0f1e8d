"""Reward plug-ins shipped with migr, found by name through the ``migr.rewards`` entry points.

The contract is :class:`rewards.base.Reward`; ``docs/adding-a-reward.md`` walks through adding one.
"""
