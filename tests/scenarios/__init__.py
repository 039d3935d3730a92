"""Scenarios run in a process of their own (they change process-wide state)."""
