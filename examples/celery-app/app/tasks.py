"""Celery app of the example: one task per web request, and a beat tick every TICK_SECONDS.

Everything the tests read is appended to files in APP_VAR_DIR (default /var/app, the bind mount
./var shared by both colours), one os.write per line (O_APPEND: short lines from concurrent
processes never interleave):

  started.log   <task_id> <colour> <epoch.ms>               record() began
  done.log      <task_id> <colour> <epoch.ms>               record() finished
  ticks.log     <colour> <epoch.ms>                         beat sent a tick (written by beat)
  tocks.log     <colour> <sent epoch.ms> <worker colour> <epoch.ms>   the tick ran on a worker
  events.log    <epoch.ms> <colour> <version> <what>        worker/beat start, stop, exit

<colour> is DEPLOY_COLOR of the process that writes the line: done.log names the worker that
ran the task, ticks.log the beat that sent the tick.
"""
from __future__ import annotations

import os
import time

from celery import Celery
from celery.beat import PersistentScheduler
from celery.signals import beat_init, worker_ready, worker_shutdown, worker_shutting_down

COLOR = os.environ.get("DEPLOY_COLOR", "blue")
VAR_DIR = os.environ.get("APP_VAR_DIR", "/var/app")
BROKER_URL = os.environ.get("BROKER_URL", "redis://redis:6379/0")
TICK_SECONDS = float(os.environ.get("TICK_SECONDS", "1"))


def _version() -> str:
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")) as f:
            return f.read().strip() or "0"
    except OSError:
        return "0"


VERSION = _version()


def now() -> str:
    return f"{time.time():.3f}"


def append(name: str, line: str) -> None:
    """Append one line to APP_VAR_DIR/name with a single write(2) in O_APPEND mode."""
    fd = os.open(os.path.join(VAR_DIR, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def event(what: str) -> None:
    line = f"{now()} {COLOR} {VERSION} {what}"
    append("events.log", line)
    print(line, flush=True)  # so `docker compose logs` shows it too


app = Celery("tasks", broker=BROKER_URL)
app.conf.update(
    # one message reserved at a time per process: a worker that stops holds (and gives back) at
    # most one task it has not started
    worker_prefetch_multiplier=1,
    # early ack (the default): a task is acknowledged as it starts; on SIGTERM the worker's warm
    # shutdown lets the running task finish and gives unstarted reserved messages back to redis
    task_acks_late=False,
    task_ignore_result=True,  # no result backend: the logs are the results
    broker_connection_retry_on_startup=True,
    # fail fast (web answers 503) rather than hang when redis is down
    broker_transport_options={"socket_connect_timeout": 2, "socket_timeout": 5},
    broker_connection_timeout=2,
    timezone="UTC",
    # the tick carries the colour of the beat that scheduled it (fixed when beat starts)
    beat_schedule={"tick": {"task": "tasks.tick", "schedule": TICK_SECONDS, "args": (COLOR,)}},
    beat_scheduler="tasks:LoggingScheduler",
    beat_max_loop_interval=1,
)


@app.task(name="tasks.record")
def record(task_id: str, seconds: float = 0) -> str:
    append("started.log", f"{task_id} {COLOR} {now()}")
    if float(seconds) > 0:
        time.sleep(float(seconds))
    append("done.log", f"{task_id} {COLOR} {now()}")
    return task_id


@app.task(name="tasks.tick")
def tick(colour: str, sent: str = "") -> None:
    append("tocks.log", f"{colour} {sent or '-'} {COLOR} {now()}")


class LoggingScheduler(PersistentScheduler):
    """The default scheduler, plus one ticks.log line each time beat sends the tick."""

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        sent = now()
        if entry.task == "tasks.tick":
            entry.kwargs = {"sent": sent}
        result = super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        if entry.task == "tasks.tick":
            append("ticks.log", f"{COLOR} {sent}")
        return result

    def close(self):
        # beat's service calls close() more than once on the way out: log the stop once
        if not getattr(self, "_stop_logged", False):
            self._stop_logged = True
            event("beat stop")
        super().close()


@worker_ready.connect
def _worker_ready(**_kw) -> None:
    event("worker start")


@worker_shutting_down.connect
def _worker_shutting_down(sig=None, how=None, **_kw) -> None:
    event(f"worker stop {sig or ''} {how or ''}".rstrip())


@worker_shutdown.connect
def _worker_shutdown(**_kw) -> None:
    event("worker exit")


@beat_init.connect
def _beat_init(**_kw) -> None:
    event("beat start")
