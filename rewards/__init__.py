"""Reward plug-ins shipped with migr, found by name through the ``migr.rewards`` entry points.

The contract is :class:`rewards.base.Reward`; the README section "Adding a reward" walks through adding one.
"""
