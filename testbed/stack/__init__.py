"""A running stack: the holder process that creates a lab from a template (with events and
rollback), runs its load balancers' control plane (target registry, health, controller and
HAProxy sync), applies updates, and tears everything down when asked or when its owner dies.
"""
