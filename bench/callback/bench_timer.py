# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Records each task's wall time (task start to its result) and whether it changed, as JSON
lines in $HOTPORT_BENCH_TIMES: bench/through_ansible.py subtracts a ping task's time from the
module's."""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timer
type: aggregate
short_description: task wall times for bench/through_ansible.py
description: Writes one JSON line per task result (name, seconds, changed, failed) to $HOTPORT_BENCH_TIMES.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.started = None
        self.out = open(os.environ["HOTPORT_BENCH_TIMES"], "a")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started = time.perf_counter()

    def record(self, result, failed):
        self.out.write(json.dumps({"task": result.task_name, "seconds": time.perf_counter() - self.started,
                                   "changed": bool(result._result.get("changed")), "failed": failed,
                                   "msg": result._result.get("msg", "")}) + "\n")
        self.out.flush()

    def v2_runner_on_ok(self, result):
        self.record(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.record(result, True)
