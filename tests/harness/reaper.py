"""Reaper side process (started by util.REAPER; not imported by anything else).

Reads lines from stdin:
  add <id> <json action>     remember an action
  del <id>                   forget it (the harness cleaned up itself)
On EOF (the harness exited, however it died) runs the remaining actions, newest first:
  {"kill": pid, "sig": 9}                     kill a process group leader / process
  {"pgstop": datadir, "pg_ctl": path}         pg_ctl stop -m immediate as the postgres user
  {"rmtree": path}                            remove a directory tree
Each action is bounded in time; failures are ignored (best effort, nothing else to report to).
"""

import json
import os
import shutil
import signal
import subprocess
import sys


def run_action(action: dict) -> None:
    try:
        if "kill" in action:
            try:
                os.kill(int(action["kill"]), int(action.get("sig", signal.SIGKILL)))
            except ProcessLookupError:
                pass
        elif "pgstop" in action:
            argv = [action.get("pg_ctl", "/usr/lib/postgresql/15/bin/pg_ctl"), "stop", "-D",
                    action["pgstop"], "-m", "immediate", "-w", "-t", "20"]
            if os.geteuid() == 0:
                argv = ["runuser", "-u", "postgres", "--", *argv]
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30)
        elif "rmtree" in action:
            shutil.rmtree(action["rmtree"], ignore_errors=True)
    except Exception:
        pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    actions: dict[int, dict] = {}
    for line in sys.stdin:
        parts = line.rstrip("\n").split(" ", 2)
        try:
            if parts[0] == "add" and len(parts) == 3:
                actions[int(parts[1])] = json.loads(parts[2])
            elif parts[0] == "del" and len(parts) >= 2:
                actions.pop(int(parts[1]), None)
        except ValueError:
            continue
    for rid in sorted(actions, reverse=True):
        run_action(actions[rid])


if __name__ == "__main__":
    main()
