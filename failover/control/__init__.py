"""The controller's roles, each in a file of its own, wired by `failover.controller`.

- `house`: what the roles share (the wiring and the signals they pass one another).
- `probe_side`: probe results -> the health board, latency moves, flips, wake-ups.
- `decider`: health and overrides -> every record's decision, and what moved.
- `writer`: plan -> write -> confirm, background reads of DNS, refusals, conflicts.
- `zone_fence`: the lone controller's claim on each zone's fence, and its renewal.
- `journal`: events, history, state saves and their retry queue, a failing store.
- `status_side`: /status, the page, /readyz's problems and the gauges.

The fleet's side (votes, views, leadership, the fence) is `failover.cluster.fleet_side`.
Each role is handed the house and the roles below it; none imports the controller:
house <- journal, writer <- zone_fence, decider <- fleet_side <- probe_side <- status_side.
"""
