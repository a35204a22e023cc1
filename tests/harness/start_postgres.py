"""CLI over PgCluster (run via scripts/start-postgres).

  start-postgres start --dir D [--port P] [--pgbench-scale N] [--max-connections N]
                       [--shared-buffers SIZE] [--set NAME=VALUE ...]
      initdb + start a cluster in D (must be empty or absent), create the harness roles and
      databases, optionally pgbench -i; prints shell-sourceable `export` lines on stdout:
        eval "$(scripts/start-postgres start --dir /tmp/pg)"
  start-postgres env --dir D      print the same export lines again
  start-postgres stop --dir D     pg_ctl stop -m immediate and remove D

The cluster keeps running after the command exits (no reaper): stop it with `stop`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .pgcluster import PgCluster
from .util import HarnessError


def _exports(env: dict) -> str:
    return "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in env.items())


def cmd_start(args) -> int:
    settings = {}
    for s in args.set or []:
        if "=" not in s:
            raise HarnessError(f"--set wants NAME=VALUE, got {s!r}")
        k, v = s.split("=", 1)
        settings[k.strip()] = v.strip()
    base = Path(args.dir).resolve()
    if base.exists() and any(base.iterdir()):
        raise HarnessError(f"{base} exists and is not empty")
    for parent in base.parents:  # the postgres user must be able to reach the directory
        if parent.exists() and not (parent.stat().st_mode & 0o001):
            raise HarnessError(f"{parent} is not searchable by other users; the postgres "
                               f"user cannot reach {base}: pick a directory under /tmp")
    cluster = PgCluster(max_connections=args.max_connections, shared_buffers=args.shared_buffers,
                        port=args.port, base_dir=str(base), persist=True, settings=settings)
    cluster.start()
    try:
        if args.pgbench_scale:
            print(f"start-postgres: pgbench -i -s {args.pgbench_scale} ...", file=sys.stderr)
            cluster.pgbench_init("bench", scale=args.pgbench_scale)
        env = cluster.env()
        (base / "env.json").write_text(json.dumps(env))
    except BaseException:
        cluster.stop()
        raise
    print(f"start-postgres: PostgreSQL on {cluster.host}:{cluster.port}, data in {base}; "
          f"stop with: scripts/start-postgres stop --dir {base}", file=sys.stderr)
    sys.stdout.write(_exports(env))
    return 0


def cmd_env(args) -> int:
    f = Path(args.dir).resolve() / "env.json"
    if not f.exists():
        raise HarnessError(f"{f} not found: was the cluster started with start-postgres?")
    sys.stdout.write(_exports(json.loads(f.read_text())))
    return 0


def cmd_stop(args) -> int:
    PgCluster.stop_dir(args.dir)
    print(f"start-postgres: stopped and removed {Path(args.dir).resolve()}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="start-postgres", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start a cluster in --dir and print its environment")
    s.add_argument("--dir", required=True)
    s.add_argument("--port", type=int, default=None, help="default: a free port")
    s.add_argument("--pgbench-scale", type=int, default=0, help="pgbench -i -s N into db bench")
    s.add_argument("--max-connections", type=int, default=200)
    s.add_argument("--shared-buffers", default="128MB")
    s.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="extra postgresql.conf setting (repeatable)")
    s.set_defaults(func=cmd_start)
    e = sub.add_parser("env", help="print the environment of a running cluster")
    e.add_argument("--dir", required=True)
    e.set_defaults(func=cmd_env)
    t = sub.add_parser("stop", help="stop the cluster in --dir and remove the dir")
    t.add_argument("--dir", required=True)
    t.set_defaults(func=cmd_stop)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as err:
        print(f"start-postgres: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
