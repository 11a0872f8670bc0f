"""The Task workflow as pure logic: the state machine, dependency release, CarePlan roll-up, overdue escalation,
routing to roles and the Provenance of every change.

No I/O and no clock: the service layer (service/task_workflow.py and friends) loads what these functions need,
passes `now` in, and writes what they return in the transaction of the change that caused it.
"""
